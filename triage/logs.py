"""Structured logs: one JSON object per line in production, readable lines in dev.

Request and task context travel in context variables so every line logged
while handling a request or running a task carries its id, without threading
a logger through the code.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern
from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
task_var: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "task", default=None
)

access_log = logging.getLogger("triage.access")

# A client-supplied request id is echoed only when it is short and plain, so
# it cannot inject anything into logs.
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


# --- secrets in URL paths ------------------------------------------------------
# Integration keys travel in the path (/integrations/heartbeat/<key>) because
# some senders can only be given a URL. Every path that reaches a log line is
# scrubbed here, whatever the method or status and whoever logs it (our access
# log, django.request's "Not Found: /…", runserver, gunicorn), so a key never
# depends on a view running to be hidden. The shapes come from the URL
# configuration: any route parameter named below is a secret, so a new keyed
# route is scrubbed without touching this file.
SECRET_PARAMETERS = frozenset({"key", "token"})
# What is left of a secret: as many characters as the integrations page shows
# to tell keys apart (integrations.keys.PREFIX_LENGTH), then an ellipsis.
_KEPT = 8
# A path segment as it appears inside a log line: it ends at the next slash,
# at white space, or at a quote, query or fragment character.
_SEGMENT = r"[^/\s\"'?#]+"
_ROUTE_PARAMETER = re.compile(r"<(?:[^>:]+:)?(?P<name>[^>]+)>")
# Per URL conf. Two threads may both derive it once: the result is the same,
# and no lock means a line logged while the URL conf loads cannot deadlock.
_routes: dict[str, tuple[re.Pattern[str], ...]] = {}


def _secret_regex(route: str) -> re.Pattern[str] | None:
    """A regex finding `route` anywhere in a text, with the secret as `secret`.

    Slashes may be doubled and letters may differ in case: the URL resolver
    refuses those paths with a 404, but the 404 is logged too.
    """
    parts = [r"/+"]
    position = 0
    for parameter in _ROUTE_PARAMETER.finditer(route):
        literal = route[position : parameter.start()]
        parts.append(r"/+".join(re.escape(piece) for piece in literal.split("/")))
        if parameter["name"] in SECRET_PARAMETERS:
            parts.append(f"(?P<secret>{_SEGMENT})")
            return re.compile("(?P<head>" + "".join(parts[:-1]) + ")" + parts[-1], re.IGNORECASE)
        parts.append(_SEGMENT)
        position = parameter.end()
    return None


def _walk(patterns: Iterable[URLPattern | URLResolver], prefix: str) -> Iterable[str]:
    for pattern in patterns:
        if not isinstance(pattern.pattern, RoutePattern):
            continue  # regex routes carry no secrets (test_logs checks)
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, route)
        else:
            yield route


def secret_routes() -> tuple[re.Pattern[str], ...]:
    """The regexes of every route with a secret parameter, derived once per URL conf."""
    if not apps.ready:
        return ()  # nothing is served, so no path is logged, before the apps load
    resolver = get_resolver()
    urlconf = str(resolver.urlconf_name)
    found = _routes.get(urlconf)
    if found is None:
        try:
            routes = list(_walk(resolver.url_patterns, ""))
        except ImproperlyConfigured:
            return ()  # logged while the URL conf itself is being imported
        found = tuple(
            regex for regex in map(_secret_regex, dict.fromkeys(routes)) if regex is not None
        )
        _routes[urlconf] = found
    return found


def _masked(match: re.Match[str]) -> str:
    return match["head"] + match["secret"][:_KEPT] + "…"


def scrub(text: str) -> str:
    """`text` with the secret of every keyed URL path in it cut to a short prefix."""
    if "/" not in text:
        return text
    for regex in secret_routes():
        text = regex.sub(_masked, text)
    return text


class ScrubFilter(logging.Filter):
    """Scrubs a record's message in place, for handlers whose formatter is not ours (gunicorn)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        return True


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_id_var.get()
        if request_id and not hasattr(record, "request_id"):
            record.request_id = request_id
        task = task_var.get()
        if task and not hasattr(record, "task_name"):
            record.task_name, record.task_id = task
        return True


class JsonFormatter(_BaseJsonFormatter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault(
            "rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"}
        )
        kwargs.setdefault("timestamp", False)
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s", *args, **kwargs)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{seconds}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        # Last step, so the message, every extra field and any traceback are covered.
        return scrub(super().format(record))


# Attributes every LogRecord has; anything else was passed in `extra=`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


# Tasks beat runs every second to every minute that usually find nothing to
# do (the escalation check, the heartbeat check, reconciliation): Celery's
# per-run INFO lines about them ("Sending due task", "Task ... received",
# "Task ... succeeded") are dropped; each task logs a line itself when it did
# something, and the escalation loop's heartbeat is in /metrics and /readyz.
ROUTINE_TASKS = frozenset(
    {"paging.check_escalations", "paging.reconcile", "integrations.check_heartbeats"}
)


class QuietRoutineTasks(logging.Filter):
    """Drops Celery's below-WARNING lines about ``ROUTINE_TASKS`` (set on the
    loggers that write them, so every handler is spared them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        args = record.args
        values = args.values() if isinstance(args, dict) else (args or ())
        return not any(value in ROUTINE_TASKS for value in values if isinstance(value, str))


class ConsoleFormatter(logging.Formatter):
    """`HH:MM:SS level logger message key=value ...`, for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        extras = " ".join(
            f"{key}={value}" for key, value in vars(record).items() if key not in _STANDARD
        )
        when = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{when} {record.levelname.lower():<7} {record.name}: {message}"
        if extras:
            line = f"{line}  {extras}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return scrub(line)


class RequestLogMiddleware:
    """Gives each request an id (echoed as X-Request-ID) and logs one access line."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            duration_ms = round((time.perf_counter() - started) * 1000, 2)
            # The query string is left out on purpose: it may carry tokens.
            # The path is scrubbed here too, so the record itself holds no
            # key, whichever handler or formatter it reaches.
            path = scrub(request.path)
            access_log.info(
                "%s %s %s",
                request.method,
                path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": path,
                    "status": response.status_code,
                    "duration_ms": duration_ms,
                },
            )
            return response
        finally:
            request_id_var.reset(token)
