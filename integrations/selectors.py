"""Reads shared by the /v1 API and the MCP tools: the same JSON shapes for both.

Lists use keyset (cursor) pagination: a cursor names the last row of a page,
so a page costs the same however deep it is, and rows opened meanwhile do
not shift later pages. Every page runs a fixed number of queries.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.urls import reverse

from incidents import selectors
from incidents.models import OPEN_STATUSES, Incident, Service, TimelineEvent
from incidents.selectors import timeline
from incidents.serializers import event_json, incident_json, storm_alerts_json
from insights.selectors import Health
from integrations.models import ChangeEvent
from integrations.payloads import web_url
from paging import oncall
from paging.escalation import level_targets
from paging.models import EscalationPolicy, Schedule
from paging.selectors import PagingSummary, paging_summary
from triage import jsonbody
from triage.numbers import ascii_int

MAX_PAGE = 200


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True)
class IncidentQuery:
    status: str = ""  # a Status value, "open", "all" or "" for any
    severity: str = ""
    service: Service | None = None
    source: str = ""
    q: str = ""
    opened_from: date | None = None  # days in the current time zone
    opened_to: date | None = None


def _encode(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _decode(cursor: str, length: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = jsonbody.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):  # jsonbody.InvalidJson is a ValueError
        raise InvalidCursor("The cursor is not one this API returned.") from None
    if not isinstance(values, list) or len(values) != length:
        raise InvalidCursor("The cursor is not one this API returned.")
    return values


def _cursor_time(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidCursor("The cursor is not one this API returned.") from None
    if parsed.tzinfo is None:
        raise InvalidCursor("The cursor is not one this API returned.")
    return parsed


def _cursor_int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise InvalidCursor("The cursor is not one this API returned.")
    return value


def _took(end: datetime | None, start: datetime) -> float | None:
    """Seconds from opening to a moment (the incident's current
    acknowledgement or resolution), None before it."""
    return None if end is None else (end - start).total_seconds()


def incident_out(incident: Incident, paging: PagingSummary | None) -> dict[str, Any]:
    """An incident as the API and MCP tools show it: fields, paging, links."""
    body = incident_json(incident)
    body["time_to_acknowledge"] = _took(incident.acknowledged_at, incident.opened_at)
    body["time_to_resolve"] = _took(incident.resolved_at, incident.opened_at)
    next_at = paging.next_escalation_at if paging else incident.next_escalation_at
    body["paging"] = {
        "level": paging.level if paging else incident.escalation_level,
        "next_escalation_at": next_at.isoformat() if next_at else None,
        "paged": list(paging.paged) if paging else [],
    }
    body["links"] = {
        "ui": settings.BASE_URL + incident.get_absolute_url(),
        "api": settings.BASE_URL + reverse("v1:incident", args=[incident.pk]),
    }
    return body


def _with_paging(incidents: Sequence[Incident]) -> list[dict[str, Any]]:
    summaries = paging_summary(incidents)
    return [incident_out(incident, summaries.get(incident.pk)) for incident in incidents]


def _base() -> QuerySet[Incident]:
    return Incident.objects.select_related("service", "acknowledged_by", "resolved_by")


def open_incidents(*, limit: int = 100, cursor: str | None = None) -> Page:
    """Open incidents in the dashboard's order (incidents.selectors.open_incidents):
    most severe first, those nobody could be reached for first, then oldest first."""
    incidents = selectors.open_incidents().select_related(
        "service", "acknowledged_by", "resolved_by"
    )
    if cursor:
        rank, reached, opened_raw, pk = _decode(cursor, 4)
        rank, pk = _cursor_int(rank), _cursor_int(pk)
        reached, opened = bool(_cursor_int(reached)), _cursor_time(opened_raw)
        incidents = incidents.filter(
            Q(rank__gt=rank)
            | Q(rank=rank, reached__gt=reached)
            | Q(rank=rank, reached=reached, opened_at__gt=opened)
            | Q(rank=rank, reached=reached, opened_at=opened, pk__gt=pk)
        )
    rows = list(incidents[: limit + 1])
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        reached = int(last.nobody_reached_at is None)
        next_cursor = _encode([last.severity_rank, reached, last.opened_at.isoformat(), last.pk])
    return Page(items=_with_paging(rows), next_cursor=next_cursor)


def incidents(query: IncidentQuery, *, limit: int = 50, cursor: str | None = None) -> Page:
    """Incidents matching the query, newest first."""
    rows = _base()
    if query.status == "open":
        rows = rows.filter(status__in=OPEN_STATUSES)
    elif query.status and query.status != selectors.STATUS_ALL:
        rows = rows.filter(status=query.status)
    if query.severity:
        rows = rows.filter(severity=query.severity)
    if query.service is not None:
        rows = rows.filter(service=query.service)
    if query.source:
        rows = rows.filter(source=query.source)
    # The dashboard's search and date range, spelled once (incidents.selectors).
    rows = selectors.opened_between(rows, query.opened_from, query.opened_to)
    rows = selectors.searched(rows, query.q)
    if cursor:
        opened_raw, pk = _decode(cursor, 2)
        opened, pk = _cursor_time(opened_raw), _cursor_int(pk)
        rows = rows.filter(Q(opened_at__lt=opened) | Q(opened_at=opened, pk__lt=pk))
    page = list(rows.order_by("-opened_at", "-id")[: limit + 1])
    next_cursor = None
    if len(page) > limit:
        page = page[:limit]
        next_cursor = _encode([page[-1].opened_at.isoformat(), page[-1].pk])
    return Page(items=_with_paging(page), next_cursor=next_cursor)


def incident_with_timeline(pk: int) -> dict[str, Any]:
    """One incident with its paging state, full timeline and the recent changes
    to its service; raises Incident.DoesNotExist."""
    incident = _base().select_related("opened_by").get(pk=pk)
    body = incident_out(incident, paging_summary([incident]).get(incident.pk))
    body["timeline"] = [event_json(event) for event in timeline(incident)]
    body["storm_alerts"] = storm_alerts_json(incident)
    body["recent_changes"] = [change_out(change) for change in recent_changes(incident)]
    return body


# PagerDuty shows an incident the changes to its service in the 24 hours
# before it opened.
RECENT_CHANGES_WINDOW = timedelta(hours=24)
RECENT_CHANGES_SHOWN = 20


def recent_changes(incident: Incident) -> list[ChangeEvent]:
    """Changes to the incident's service in the day before it opened, newest
    first (index change_service_occurred)."""
    return list(
        ChangeEvent.objects.filter(
            service_id=incident.service_id,
            occurred_at__gte=incident.opened_at - RECENT_CHANGES_WINDOW,
            occurred_at__lte=incident.opened_at,
        ).order_by("-occurred_at", "-pk")[:RECENT_CHANGES_SHOWN]
    )


def change_links(change: ChangeEvent) -> list[dict[str, str]]:
    """The change's links that are absolute http(s) URLs, with their text."""
    return [
        {"href": link["href"], "text": link.get("text") or link["href"]}
        for link in change.links
        if isinstance(link, dict) and isinstance(link.get("href"), str) and web_url(link["href"])
    ]


def change_out(change: ChangeEvent) -> dict[str, Any]:
    return {
        "summary": change.summary,
        "source": change.source,
        "at": change.occurred_at.isoformat(),
        "custom_details": change.custom_details,
        "links": change_links(change),
    }


def event_out(event: TimelineEvent) -> dict[str, Any]:
    return event_json(event)


def incident_for_change(pk: int) -> Incident:
    """The incident a write acts on; raises Incident.DoesNotExist."""
    return Incident.objects.select_related("service").get(pk=pk)


def services() -> list[dict[str, Any]]:
    return [
        {"slug": service.slug, "name": service.name, "description": service.description}
        for service in Service.objects.order_by("name")
    ]


def service_by_slug(slug: str) -> Service | None:
    return Service.objects.filter(slug=slug).first()


# --- who is on call -----------------------------------------------------------


def _person(user: Any) -> dict[str, str]:
    return {"username": user.get_username(), "name": user.get_full_name() or user.get_username()}


def schedule_by_slug(slug: str) -> Schedule | None:
    return Schedule.objects.filter(slug=slug).first()


def policy_by_name_or_id(value: str) -> EscalationPolicy | None:
    """An escalation policy by its exact name, or by its id."""
    found = EscalationPolicy.objects.filter(name=value).first()
    number = ascii_int(value)
    if found is None and number is not None:
        found = EscalationPolicy.objects.filter(pk=number).first()
    return found


def schedule_on_call(schedule: Schedule, *, at: datetime) -> dict[str, Any]:
    """Who is on call for a schedule at ``at``, and the next shift after them."""
    following = oncall.next_handoff(schedule, at=at)
    return {
        "slug": schedule.slug,
        "name": schedule.name,
        "time_zone": schedule.time_zone,
        "on_call": [_person(user) for user in oncall.who_is_on_call(schedule, at=at)],
        "next": None
        if following is None
        else {
            "person": _person(following.user),
            "start": following.start.isoformat(),
            "end": following.end.isoformat(),
        },
    }


def policy_on_call(policy: EscalationPolicy, *, at: datetime) -> dict[str, Any]:
    """Who each level of a policy would page at ``at`` (the same rule as paging)."""
    levels = policy.levels.order_by("position", "pk").prefetch_related("users", "schedules")
    return {
        "id": policy.pk,
        "name": policy.name,
        "repeat_count": policy.repeat_count,
        "levels": [
            {
                "level": number,
                "delay_minutes": level.delay_minutes,
                "people": [_person(user) for user in level_targets(level, at=at)],
            }
            for number, level in enumerate(levels, start=1)
        ],
    }


def on_call(
    *,
    at: datetime,
    schedule: Schedule | None = None,
    policy: EscalationPolicy | None = None,
) -> dict[str, Any]:
    """Who is on call at ``at``: for one schedule, for one escalation policy
    (per level), or — with neither — for every schedule."""
    if policy is not None:
        return {"at": at.isoformat(), "schedules": [], "policy": policy_on_call(policy, at=at)}
    schedules = [schedule] if schedule is not None else list(Schedule.objects.order_by("name"))
    return {
        "at": at.isoformat(),
        "schedules": [schedule_on_call(item, at=at) for item in schedules],
        "policy": None,
    }


# --- on-call health -------------------------------------------------------------


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def insights_out(figures: Health) -> dict[str, Any]:
    opens, closes = settings.BUSINESS_HOURS
    service = figures.service
    return {
        "days": figures.days,
        "service": {"slug": service.slug, "name": service.name} if service else None,
        "start": figures.start,
        "as_of": figures.end,
        "business_hours": {
            "weekdays": "Mon-Fri",
            "start": f"{opens:%H:%M}",
            "end": f"{closes:%H:%M}",
            "time_zone": figures.time_zone,
        },
        "incidents": figures.incidents,
        "incidents_per_day": [{"date": day, "incidents": n} for day, n in figures.per_day],
        "time_to_acknowledge": {
            "count": figures.acknowledge.count,
            "median_seconds": _seconds(figures.acknowledge.median),
            "p90_seconds": _seconds(figures.acknowledge.p90),
        },
        "time_to_resolve": {
            "count": figures.resolve.count,
            "median_seconds": _seconds(figures.resolve.median),
            "p90_seconds": _seconds(figures.resolve.p90),
        },
        "escalated_past_level_1": figures.escalated,
        "noisiest": [
            {
                "key": row.key,
                "is_dedup_key": row.is_dedup_key,
                "service": {"slug": row.service, "name": row.service_name},
                "incidents": row.incidents,
                "alert_repeats": row.alert_repeats,
                "last_opened_at": row.last_opened_at,
            }
            for row in figures.noisiest
        ],
        "pages_per_person": [
            {
                "username": person.username,
                "business_hours": person.business_hours,
                "nights": person.nights,
                "weekends": person.weekends,
                "total": person.total,
            }
            for person in figures.pages
        ],
        "services": [
            {
                "service": {"slug": row.slug, "name": row.name},
                "incidents": row.incidents,
                "acknowledge_median_seconds": _seconds(row.acknowledge_median),
                "resolve_median_seconds": _seconds(row.resolve_median),
                "escalated_past_level_1": row.escalated,
            }
            for row in figures.services
        ],
    }
