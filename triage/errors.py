"""Errors: the base of every refusal a service gives (``DomainError``), and
what a request gets when something below triage fails.

Services in every app raise subclasses of ``DomainError`` for a request that
breaks a rule (a status change that is not allowed, a reused idempotency
key...); views, the admin and commands turn them into a clear 4xx or message
using its ``status``, ``title`` and ``detail``.

A database that cannot be reached (restarting, failing over, network gone)
is not a bug in the request: it gets ``503 Service Unavailable`` with
``Retry-After``, so senders such as Alertmanager and Events v2 clients retry
it, instead of a 500. Django calls ``handler500`` inside the ``except`` block
of the uncaught exception, so ``sys.exc_info()`` says what happened. The
broken connection itself is closed by Django at the end of the request
(it marks connections that raised), and the next request connects afresh:
triage recovers by itself once the database is back.
"""

from __future__ import annotations

import sys

from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.views import defaults

from triage.http import answers_json, problem

RETRY_AFTER_SECONDS = 5


class DomainError(Exception):
    status = 409
    title = "Conflict"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _database_unavailable() -> bool:
    error = sys.exc_info()[1]
    while error is not None:
        if isinstance(error, (OperationalError, InterfaceError)):
            return True
        if not isinstance(error, DatabaseError):
            return False
        error = error.__cause__
    return False


def server_error(request: HttpRequest) -> HttpResponse:
    if _database_unavailable():
        status, title = 503, "Service unavailable"
        detail = "The database cannot be reached right now. Retry in a few seconds."
    else:
        status, title = 500, "Server error"
        detail = "Something went wrong on our side; it has been logged."
    if answers_json(request):
        response: HttpResponse = problem(status, title, detail)
    else:
        response = HttpResponse(
            f"<!doctype html><title>{title} · triage</title><h1>{title}</h1><p>{detail}</p>",
            status=status,
        )
    if status == 503:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 400 for what it refuses before any view (a Host header that is
    not a host, say): problem+json on the API like every other API error."""
    if answers_json(request):
        return problem(400, "Bad request", "The request could not be understood.")
    return defaults.bad_request(request, exception)
