"""The endpoints monitoring talks to: Alertmanager's and Grafana's webhooks,
the Events API v2 endpoints (alerts and change events) and heartbeat pings.
Thin: authenticate the key, rate-limit, parse, call the service, answer.
Every rejection happens before anything is written. Each is ``machine``: it
runs without the browser-only middleware (``triage.lean``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from integrations import services
from integrations.keys import admit, authenticate_key
from integrations.models import Grouping, Integration, Kind
from integrations.payloads import parse_alertmanager, parse_change_event, parse_event
from triage import ratelimit
from triage.http import BadRequest, json_body, problem
from triage.lean import machine


def _bearer(request: HttpRequest) -> str:
    kind, _, raw = request.headers.get("Authorization", "").partition(" ")
    return raw.strip() if kind.lower() == "bearer" else ""


def _authenticate(raw: str, kind: str) -> Integration | HttpResponse:
    integration = authenticate_key(raw) if raw else None
    if integration is None:
        response = problem(
            401, "Unknown integration key", "The key is wrong, revoked or was rotated."
        )
        response["WWW-Authenticate"] = 'Bearer realm="triage integrations"'
        return response
    if integration.kind != kind:
        return problem(
            403,
            "Wrong kind of integration key",
            f"This key belongs to a {integration.get_kind_display()} integration; "
            f"this endpoint needs a {Kind(kind).label} key.",
        )
    return integration


def _hit(integration: Integration) -> ratelimit.Verdict:
    return ratelimit.hit(
        "integration", str(integration.pk), limit=integration.rate_limit_per_minute
    )


def _throttled(integration: Integration) -> HttpResponse | None:
    verdict = _hit(integration)
    if verdict.allowed:
        return None
    response = problem(
        429,
        "Too many requests",
        f"This integration key may send {integration.rate_limit_per_minute} requests a "
        f"minute. Retry after {verdict.retry_after} s.",
    )
    response["Retry-After"] = str(verdict.retry_after)
    return response


def _webhook(request: HttpRequest, key: str, kind: Kind) -> HttpResponse:
    integration = _authenticate(key or _bearer(request), kind)
    if isinstance(integration, HttpResponse):
        return integration
    throttled = _throttled(integration)
    if throttled is not None:
        return throttled
    try:
        data = json_body(request)
    except BadRequest as exc:
        return exc.response()
    notification = parse_alertmanager(
        data,
        need_group_key=integration.grouping == Grouping.GROUP,
        grafana=kind == Kind.GRAFANA,
    )
    if isinstance(notification, list):
        errors = {"body": notification}
        sender = "Grafana" if kind == Kind.GRAFANA else "Alertmanager"
        return problem(400, f"Invalid {sender} notification", "; ".join(notification), errors)
    outcomes = services.ingest_alertmanager(integration, notification)
    return JsonResponse(
        {
            "status": "success",
            "incidents": [
                {"action": o.action, "incident": o.incident_id, "dedup_key": o.dedup_key}
                for o in outcomes
            ],
        }
    )


@machine
@csrf_exempt
@require_POST
def alertmanager(request: HttpRequest, key: str = "") -> HttpResponse:
    """POST /integrations/alertmanager/<key> (or the key as a Bearer token)."""
    return _webhook(request, key, Kind.ALERTMANAGER)


@machine
@csrf_exempt
@require_http_methods(["POST", "PUT"])
def grafana(request: HttpRequest, key: str = "") -> HttpResponse:
    """POST (or PUT: Grafana's contact point lets you pick) /integrations/grafana/<key>,
    or the key as a Bearer token."""
    return _webhook(request, key, Kind.GRAFANA)


def _invalid_event(
    status: int, errors: list[str], message: str = "Event object is invalid"
) -> HttpResponse:
    body = {"status": "invalid event", "message": message, "errors": errors}
    return JsonResponse(body, status=status)


def _events_key(routing_key: str) -> Integration | HttpResponse:
    """The Events API v2 integration of a routing key, within its rate limit.

    The key is looked up through the process's cache (``keys.admit``), which
    counts the attempt in the same round trip (a key of another kind is not
    counted)."""
    admitted = admit(routing_key, Kind.EVENTS_V2)
    integration, verdict = admitted.integration, admitted.verdict
    if integration is None or verdict is None:
        return _invalid_event(400, ["Invalid routing key"])
    if not verdict.allowed:
        response = JsonResponse(
            {
                "status": "throttle exceeded",
                "message": "Requests for this integration key are arriving too quickly. "
                "Please retry later.",
            },
            status=429,
        )
        response["Retry-After"] = str(verdict.retry_after)
        return response
    return integration


class _Routed(Protocol):
    @property
    def routing_key(self) -> str: ...


Parsed = TypeVar("Parsed", bound=_Routed)


def _events_request(
    request: HttpRequest, parse: Callable[[Any], Parsed | list[str]]
) -> tuple[Integration, Parsed] | HttpResponse:
    """The body of an Events API request parsed and its key checked, or
    PagerDuty's answer refusing it (the same for alert and change events)."""
    try:
        data = json_body(request)
    except BadRequest as exc:
        return _invalid_event(exc.status, [exc.detail], exc.title)
    parsed = parse(data)
    if isinstance(parsed, list):
        return _invalid_event(400, parsed)
    integration = _events_key(parsed.routing_key)
    if isinstance(integration, HttpResponse):
        return integration
    return integration, parsed


@machine
@csrf_exempt
@require_POST
def enqueue(request: HttpRequest) -> HttpResponse:
    """POST /v2/enqueue: PagerDuty's Events API v2, same responses."""
    received = _events_request(request, parse_event)
    if isinstance(received, HttpResponse):
        return received
    integration, event = received
    outcome = services.ingest_event(integration, event)
    return JsonResponse(
        {"status": "success", "message": "Event processed", "dedup_key": outcome.dedup_key},
        status=202,
    )


@machine
@csrf_exempt
@require_POST
def change_enqueue(request: HttpRequest) -> HttpResponse:
    """POST /v2/change/enqueue: PagerDuty's change events, same responses.

    An Events API v2 key takes both alert and change events, as in PagerDuty.
    """
    received = _events_request(request, parse_change_event)
    if isinstance(received, HttpResponse):
        return received
    integration, change = received
    services.record_change(integration, change)
    return JsonResponse({"status": "success", "message": "Change event processed"}, status=202)


@machine
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def heartbeat(request: HttpRequest, key: str) -> HttpResponse:
    """GET or POST /integrations/heartbeat/<key>: the monitored job is alive."""
    integration = _authenticate(key, Kind.HEARTBEAT)
    if isinstance(integration, HttpResponse):
        return integration
    throttled = _throttled(integration)
    if throttled is not None:
        return throttled
    outcome = services.record_ping(integration)
    return JsonResponse({"status": "ok", "resolved_incident": outcome.incident_id})
