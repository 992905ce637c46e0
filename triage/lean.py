"""The lean path for machine endpoints: what monitoring posts to skips the
middleware that only browsers need.

An Alertmanager webhook, an Events API v2 sender or a heartbeat ping has no
session, reads no flash message, renders no HTML a Content-Security-Policy
could protect, and sends no htmx headers. Through the full stack those
middleware cost about a third of a repeat's Python (CSP alone builds its
policy twice per response). ``MIDDLEWARE`` lists them wrapped by
``browser_only``: a subclass that, on a machine path, passes the request
straight on; everywhere else it is the middleware itself.

CSRF and X-Frame-Options stay stock on every path: ``check --deploy`` looks
for them by name, and on the machine views (``csrf_exempt``) they cost a
cookie read and a header.

Kept on machine paths: the Prometheus middleware (request metrics), the
request log (X-Request-ID and the access line), the security middleware
(HTTPS redirect, HSTS, nosniff), the refusal of unstorable characters,
WhiteNoise and CommonMiddleware.

``MACHINE_PATHS`` are path prefixes, so the decision costs one
``str.startswith`` per wrapped middleware and needs no URL resolution;
``tests/test_lean.py`` holds it equal to the views marked ``machine`` (the
test fails when a route is added under a prefix, or a machine view outside
them). ``/integrations`` itself (the page listing integrations) and its
rotate and revoke forms are browser pages and keep every middleware.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from csp.middleware import CSPMiddleware
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django_htmx.middleware import HtmxMiddleware

MACHINE_PATHS = (
    "/v2/enqueue",
    "/v2/change/enqueue",
    "/integrations/v2/",
    "/integrations/alertmanager",
    "/integrations/grafana",
    "/integrations/heartbeat/",
)

View = TypeVar("View", bound=Callable[..., HttpResponse])


def is_machine_path(path: str) -> bool:
    return path.startswith(MACHINE_PATHS)


def machine(view: View) -> View:
    """Mark a view as a machine endpoint (its route must start with one of
    ``MACHINE_PATHS``; a test checks both ways)."""
    view.machine_endpoint = True  # type: ignore[attr-defined]
    return view


class SkipConnectionHealthCheck:
    """No ``SELECT 1`` before a machine request's first query.

    ``CONN_HEALTH_CHECKS`` makes Django ping a reused connection before the
    first query of every request, so a connection PostgreSQL dropped (a
    restart, a failover) is replaced before a browser's page fails on it:
    one round trip per request. Machine senders retry what fails: a
    connection that turns out dead fails its request with 503 and
    Retry-After (``triage.errors``), Django closes it at the end of the
    request (it raised, so Django pings it then), and the retry gets a new
    one. So after a restart each pooled connection costs one retried
    machine request, never an event answered 2xx and lost
    (``tests/test_faults.py``); browsers keep the check.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_machine_path(request.path_info):
            # Django's own flag for "checked during this request" (set by
            # connect(), missing from the stubs); reset when the next starts.
            connection.health_check_done = True  # type: ignore[attr-defined]
        return self.get_response(request)


HOOKS = ("process_view", "process_exception", "process_template_response")


def browser_only(middleware: type) -> type:
    """``middleware`` (a subclass of it, so Django's checks still find it)
    that passes machine paths straight on. Only for middleware without view,
    exception or template hooks (Django would call those on machine paths)."""
    hooks = [hook for hook in HOOKS if hasattr(middleware, hook)]
    if hooks:
        raise TypeError(f"{middleware.__name__} has {', '.join(hooks)}: not skippable")

    class BrowserOnly(middleware):  # type: ignore[misc]
        def __call__(self, request: HttpRequest) -> HttpResponse:
            if is_machine_path(request.path_info):
                response: HttpResponse = self.get_response(request)
                return response
            return super().__call__(request)  # type: ignore[no-any-return]

    BrowserOnly.__name__ = BrowserOnly.__qualname__ = f"BrowserOnly{middleware.__name__}"
    return BrowserOnly


Sessions = browser_only(SessionMiddleware)
Authentication = browser_only(AuthenticationMiddleware)
Messages = browser_only(MessageMiddleware)
ContentSecurityPolicy = browser_only(CSPMiddleware)
Htmx = browser_only(HtmxMiddleware)
