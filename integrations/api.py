"""The /v1 JSON API for automation (django-ninja): open incidents with who is
paged, incidents with cursor pagination, one incident with its timeline, the
actions, services. OpenAPI at /v1/openapi.json, interactive docs at /v1/docs.

Authentication is an API token (``Authorization: Bearer tri_...``); reads
need the read scope, writes the write scope. Every error is problem+json.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import NinjaAPI, Query, Router, Status
from ninja.errors import AuthenticationError, AuthorizationError, HttpError, ValidationError
from ninja.openapi.schema import OpenAPISchema
from ninja.operation import Operation
from ninja.params import HeaderEx, P
from ninja.parser import Parser
from ninja.security import HttpBearer
from ninja.types import DictStrAny

from accounts.models import ApiToken, TokenScope
from accounts.tokens import authenticate_token
from incidents import services
from incidents.models import OPEN_STATUSES, Incident, Source
from insights.cache import cached_health
from integrations import selectors
from integrations.schemas import (
    CreatedIncidentOut,
    IncidentDetailOut,
    IncidentFilter,
    IncidentIn,
    IncidentPage,
    InsightsFilter,
    InsightsOut,
    NoteIn,
    OnCallFilter,
    OnCallOut,
    OpenFilter,
    OpenIncidentsPage,
    Problem,
    ServiceOut,
    TimelineEventOut,
)
from triage.errors import DomainError
from triage.http import BadRequest, json_body, problem


class TriageParser(Parser):
    """JSON bodies read like every other endpoint's (triage.http.json_body:
    512 KB, triage.jsonbody's rules); its BadRequest is answered by _http_error."""

    def parse_body(self, request: HttpRequest) -> DictStrAny:
        return json_body(request)


class TokenAuth(HttpBearer):
    """An API token from accounts.tokens, with the scope an operation needs."""

    def __init__(self, scope: str) -> None:
        super().__init__()
        self.scope = scope

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken | None:
        api_token = authenticate_token(token.strip())
        if api_token is None:
            return None
        if not api_token.allows(self.scope):
            raise AuthorizationError(403, f"This token lacks the '{self.scope}' scope.")
        request.user = api_token.user
        return api_token


read = TokenAuth(TokenScope.READ)
write = TokenAuth(TokenScope.WRITE)


class TriageAPI(NinjaAPI):
    def get_openapi_schema(
        self, *, path_prefix: str | None = None, path_params: DictStrAny | None = None
    ) -> OpenAPISchema:
        """Ninja's document, with errors declared as the problem+json they are."""
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        for operations in schema["paths"].values():
            for operation in operations.values():
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if int(status) >= 400 and "application/json" in content:
                        response["content"] = {
                            "application/problem+json": content["application/json"]
                        }
        return schema

    def get_openapi_operation_id(self, operation: Operation) -> str:
        return operation.view_func.__name__


api = TriageAPI(
    title="triage API",
    version="1",
    description=(
        "What is broken, who is paged, and what to do about it. Send an API token "
        "(create one under *API tokens* in the web UI) as `Authorization: Bearer tri_...`. "
        "Errors are `application/problem+json` (RFC 9457)."
    ),
    urls_namespace="v1",
    docs_url="/docs",
    openapi_url="/openapi.json",
    parser=TriageParser(),
    auth=read,
)


# --- errors: problem+json everywhere ---------------------------------------


def _unauthorized(request: HttpRequest, exc: object) -> HttpResponse:
    response = problem(401, "Unauthorized", "Send a valid API token: Authorization: Bearer tri_...")
    response["WWW-Authenticate"] = 'Bearer realm="triage"'
    return response


def _forbidden(request: HttpRequest, exc: object) -> HttpResponse:
    detail = exc.message if isinstance(exc, AuthorizationError) else ""
    return problem(403, "Forbidden", detail)


def _field(loc: list[Any]) -> str:
    # ("body", "body", "title") → "title"; ("query", "limit") → "limit"
    parts = [str(part) for part in loc[1:]]
    if loc and loc[0] == "body" and parts and parts[0] in ("body", "payload"):
        parts = parts[1:]
    return ".".join(parts) or str(loc[0] if loc else "body")


def _invalid(request: HttpRequest, exc: object) -> HttpResponse:
    errors: dict[str, list[str]] = {}
    for error in exc.errors if isinstance(exc, ValidationError) else []:
        errors.setdefault(_field(list(error.get("loc", ()))), []).append(str(error.get("msg")))
    return problem(422, "Invalid request", "Some fields are invalid.", errors)


def _http_error(request: HttpRequest, exc: object) -> HttpResponse:
    if not isinstance(exc, HttpError):  # pragma: no cover - registered for HttpError only
        raise TypeError(exc)
    if isinstance(exc.__cause__, BadRequest):  # from TriageParser
        return exc.__cause__.response()
    titles = {404: "Not found", 405: "Method not allowed", 429: "Too many requests"}
    return problem(exc.status_code, titles.get(exc.status_code, "Bad request"), exc.message)


def _domain_error(request: HttpRequest, exc: object) -> HttpResponse:
    if not isinstance(exc, DomainError):  # pragma: no cover - registered for DomainError only
        raise TypeError(exc)
    return problem(exc.status, exc.title, exc.detail)


def _too_large(request: HttpRequest, exc: object) -> HttpResponse:
    return problem(413, "Request body too large", "The limit is 512 KB.")


api.add_exception_handler(AuthenticationError, _unauthorized)
api.add_exception_handler(AuthorizationError, _forbidden)
api.add_exception_handler(ValidationError, _invalid)
api.add_exception_handler(HttpError, _http_error)
api.add_exception_handler(DomainError, _domain_error)
api.add_exception_handler(RequestDataTooBig, _too_large)


def _not_found(pk: int) -> HttpError:
    return HttpError(404, f"No incident #{pk}.")


def _invalid_field(field: str, message: str) -> ValidationError:
    return ValidationError([{"loc": ("query", field), "msg": message}])


def _next_url(request: HttpRequest, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    query = request.GET.copy()
    query["cursor"] = cursor
    return f"{settings.BASE_URL}{request.path}?{urlencode(sorted(query.items()))}"


# 400: a NUL or lone surrogate in the URL (triage.badinput), or a body
# triage.jsonbody refuses.
READ_ERRORS: dict[int, Any] = {400: Problem, 401: Problem, 403: Problem, 422: Problem}
WRITE_ERRORS: dict[int, Any] = {
    **READ_ERRORS,
    404: Problem,
    409: Problem,
    413: Problem,
}

incidents = Router(tags=["incidents"])


@incidents.get(
    "/incidents/open",
    response={200: OpenIncidentsPage, **READ_ERRORS},
    url_name="open-incidents",
    summary="Open incidents, most severe first, with who is paged",
)
def open_incidents(request: HttpRequest, filters: Query[OpenFilter]) -> dict[str, Any]:
    try:
        page = selectors.open_incidents(limit=filters.limit, cursor=filters.cursor or None)
    except selectors.InvalidCursor as exc:
        raise _invalid_field("cursor", str(exc)) from None
    return {
        "items": page.items,
        "next_cursor": page.next_cursor,
        "next": _next_url(request, page.next_cursor),
        "count": Incident.objects.filter(status__in=OPEN_STATUSES).count(),
    }


@incidents.get(
    "/incidents",
    response={200: IncidentPage, **READ_ERRORS},
    url_name="incidents",
    summary="Incidents, newest first, filtered",
)
def list_incidents(request: HttpRequest, filters: Query[IncidentFilter]) -> dict[str, Any]:
    service = None
    if filters.service:
        service = selectors.service_by_slug(filters.service)
        if service is None:
            raise _invalid_field("service", f"No service with slug {filters.service!r}.")
    if filters.opened_from and filters.opened_to and filters.opened_from > filters.opened_to:
        raise _invalid_field("to", "The end date is before the start date.")
    query = selectors.IncidentQuery(
        status=filters.status or "",
        severity=filters.severity or "",
        service=service,
        source=filters.source or "",
        q=filters.q or "",
        opened_from=filters.opened_from,
        opened_to=filters.opened_to,
    )
    try:
        page = selectors.incidents(query, limit=filters.limit, cursor=filters.cursor or None)
    except selectors.InvalidCursor as exc:
        raise _invalid_field("cursor", str(exc)) from None
    return {
        "items": page.items,
        "next_cursor": page.next_cursor,
        "next": _next_url(request, page.next_cursor),
    }


@incidents.post(
    "/incidents",
    response={200: CreatedIncidentOut, 201: CreatedIncidentOut, **WRITE_ERRORS},
    auth=write,
    url_name="incident-create",
    summary="Open an incident (idempotent with Idempotency-Key)",
    description=(
        "Repeating a request with the same `Idempotency-Key` and body returns the incident "
        "the first one opened (200); the same key with a different body is a 422. A "
        "`dedup_key` of an open incident on the service joins it (200, `deduplicated`)."
    ),
)
def create_incident(
    request: HttpRequest,
    body: IncidentIn,
    idempotency_key: HeaderEx[
        str | None,
        P(
            alias="Idempotency-Key",
            max_length=255,
            description="Makes retries safe: the same key and body open one incident.",
        ),
    ] = None,
) -> Status[dict[str, Any]]:
    service = selectors.service_by_slug(body.service)
    if service is None:
        raise ValidationError(
            [
                {
                    "loc": ("body", "body", "service"),
                    "msg": "Unknown service. Use the slug of an existing service.",
                }
            ]
        )
    key = (idempotency_key or "").strip()
    if "\x00" in key:
        raise ValidationError(
            [{"loc": ("header", "Idempotency-Key"), "msg": "must not contain NUL characters"}]
        )
    opened = services.open_incident(
        service=service,
        title=body.title,
        severity=body.severity,
        details=body.details,
        dedup_key=body.dedup_key,
        idempotency_key=key or None,
        source=Source.API,
        actor=request.user,
    )
    out = selectors.incident_out(opened.incident, None)
    out["deduplicated"] = opened.deduplicated
    return Status(201 if opened.created else 200, out)


def _incident(pk: int) -> Incident:
    try:
        return selectors.incident_for_change(pk)
    except Incident.DoesNotExist:
        raise _not_found(pk) from None


@incidents.get(
    "/incidents/{incident_id}",
    response={200: IncidentDetailOut, 404: Problem, **READ_ERRORS},
    url_name="incident",
    summary="One incident with its timeline and paging state",
)
def get_incident(request: HttpRequest, incident_id: int) -> dict[str, Any]:
    try:
        return selectors.incident_with_timeline(incident_id)
    except Incident.DoesNotExist:
        raise _not_found(incident_id) from None


def _after(incident: Incident) -> dict[str, Any]:
    return selectors.incident_with_timeline(incident.pk)


@incidents.post(
    "/incidents/{incident_id}/acknowledge",
    response={200: IncidentDetailOut, **WRITE_ERRORS},
    auth=write,
    url_name="incident-acknowledge",
    summary="Acknowledge: stop escalating",
)
def acknowledge(request: HttpRequest, incident_id: int) -> dict[str, Any]:
    return _after(services.acknowledge_incident(_incident(incident_id), actor=request.user))


@incidents.post(
    "/incidents/{incident_id}/resolve",
    response={200: IncidentDetailOut, **WRITE_ERRORS},
    auth=write,
    url_name="incident-resolve",
    summary="Resolve",
)
def resolve(request: HttpRequest, incident_id: int) -> dict[str, Any]:
    return _after(services.resolve_incident(_incident(incident_id), actor=request.user))


@incidents.post(
    "/incidents/{incident_id}/escalate",
    response={200: IncidentDetailOut, **WRITE_ERRORS},
    auth=write,
    url_name="incident-escalate",
    summary="Page the next escalation level now",
)
def escalate(request: HttpRequest, incident_id: int) -> dict[str, Any]:
    return _after(services.escalate_incident(_incident(incident_id), actor=request.user))


@incidents.post(
    "/incidents/{incident_id}/notes",
    response={201: TimelineEventOut, **WRITE_ERRORS},
    auth=write,
    url_name="incident-note",
    summary="Add a note to the timeline",
)
def add_note(request: HttpRequest, incident_id: int, body: NoteIn) -> Status[dict[str, Any]]:
    event = services.add_note(_incident(incident_id), actor=request.user, text=body.text)
    return Status(201, selectors.event_out(event))


catalogue = Router(tags=["services"])


@catalogue.get(
    "/services",
    response={200: list[ServiceOut], **READ_ERRORS},
    url_name="services",
    summary="Services incidents belong to",
)
def list_services(request: HttpRequest) -> list[dict[str, Any]]:
    return selectors.services()


@catalogue.get(
    "/oncall",
    response={200: OnCallOut, **READ_ERRORS},
    url_name="oncall",
    summary="Who is on call, per schedule or per escalation policy level, at a time",
    description=(
        "With `schedule`: that schedule. With `policy` (or `service`, meaning the service's "
        "policy): whom each level would page. With neither: every schedule. `at` defaults to "
        "now."
    ),
    tags=["on-call"],
)
def who_is_on_call(request: HttpRequest, filters: Query[OnCallFilter]) -> dict[str, Any]:
    given = [name for name in ("schedule", "policy", "service") if getattr(filters, name)]
    if len(given) > 1:
        raise _invalid_field(given[1], f"Give one of schedule, policy or service, not {given}.")
    at = filters.at or timezone.now()
    if timezone.is_naive(at):
        # TIME_ZONE, as documented, even for a signed-in browser's request
        # (whose own zone accounts.middleware activated).
        at = timezone.make_aware(at, timezone.get_default_timezone())
    schedule = policy = None
    if filters.schedule:
        schedule = selectors.schedule_by_slug(filters.schedule)
        if schedule is None:
            raise _invalid_field("schedule", f"No schedule with slug {filters.schedule!r}.")
    if filters.policy:
        policy = selectors.policy_by_name_or_id(filters.policy)
        if policy is None:
            raise _invalid_field("policy", f"No escalation policy {filters.policy!r}.")
    if filters.service:
        service = selectors.service_by_slug(filters.service)
        if service is None:
            raise _invalid_field("service", f"No service with slug {filters.service!r}.")
        policy = service.escalation_policy
        if policy is None:
            raise _invalid_field("service", f"Service {service.slug!r} has no escalation policy.")
    return selectors.on_call(at=at, schedule=schedule, policy=policy)


health = Router(tags=["insights"])


@health.get(
    "/insights",
    response={200: InsightsOut, **READ_ERRORS},
    url_name="insights",
    summary="On-call health: volume, response times, noise, who is paged when",
    description=(
        "The figures of the `/insights` page for the last `days` calendar days (today "
        "included, in the server's time zone), for one `service` or all: incidents per day, "
        "median and 90th percentile time to acknowledge and to resolve, the noisiest dedup "
        "keys, pages per person in business hours, nights and weekends, and incidents that "
        "escalated past level 1. Read from PostgreSQL and cached for up to 60 seconds "
        "(`as_of` says when they were read)."
    ),
)
def insights(request: HttpRequest, filters: Query[InsightsFilter]) -> dict[str, Any]:
    service = None
    if filters.service:
        service = selectors.service_by_slug(filters.service)
        if service is None:
            raise _invalid_field("service", f"No service with slug {filters.service!r}.")
    return selectors.insights_out(cached_health(filters.days, service))


api.add_router("", incidents)
api.add_router("", catalogue)
api.add_router("", health)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document as served (for tests and tooling)."""
    document: dict[str, Any] = json.loads(json.dumps(api.get_openapi_schema(path_prefix="/v1/")))
    return document
