"""Reads for pages and the API. Each brings its own joins, so a list costs a
fixed number of queries however many incidents it shows."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Case, Count, F, IntegerField, OuterRef, Q, QuerySet, Subquery, When
from django.utils import timezone

from incidents.models import (
    NOBODY_REACHED_LAST,
    OPEN_STATUSES,
    SEVERITY_RANK,
    EventKind,
    Incident,
    Service,
    Severity,
    Status,
    StormAlert,
    TimelineEvent,
)
from triage.numbers import ascii_int

STATUS_ALL = "all"  # the status filter's "every status" (incidents.forms)


@dataclass(frozen=True)
class IncidentFilter:
    service: Service | None = None
    severity: str = ""
    # "": open (rank order); a Status value; "all". Any but "" reads history.
    status: str = ""
    q: str = ""
    # Opened on these days (inclusive), in the zone times are shown in.
    opened_from: date | None = None
    opened_to: date | None = None

    @property
    def history(self) -> bool:
        """Resolved incidents may be listed: newest first instead of rank order."""
        return self.status in (Status.RESOLVED, STATUS_ALL)


def open_counts_by_severity() -> dict[str, int]:
    """Open incidents per severity (all severities present, zeros included)."""
    counts = dict.fromkeys(Severity.values, 0)
    counts.update(_open_counts().all())
    return counts


@functools.cache
def _open_counts() -> QuerySet[Incident, tuple[str, int]]:
    # Built once per process and cloned per read (see _open_rows).
    # COUNT(*), not COUNT(id): the partial index incident_open_severity holds
    # the severity of every open incident, so PostgreSQL counts from the
    # index alone. Counting ids read every open row from the table (a
    # sequential scan, about 3 times slower at 10,000 open incidents).
    return (
        Incident.objects.filter(status__in=OPEN_STATUSES)
        .values_list("severity")
        .annotate(n=Count("*"))
        .order_by()
    )


def incident_detail(pk: int) -> Incident:
    """One incident with everything its page shows; raises Incident.DoesNotExist."""
    return Incident.objects.select_related(
        "service", "opened_by", "acknowledged_by", "resolved_by"
    ).get(pk=pk)


def timeline(incident: Incident) -> QuerySet[TimelineEvent]:
    return incident.timeline.select_related("actor").order_by("created_at", "pk")


def services() -> QuerySet[Service]:
    return Service.objects.order_by("name")


@dataclass(slots=True)
class DashboardRow:
    """What one dashboard row shows."""

    pk: int
    title: str
    severity: str
    status: str
    opened_at: datetime
    escalation_level: int
    next_escalation_at: datetime | None
    service_name: str
    acknowledged_by: str | None  # username
    # The names in the latest "paged" timeline event; the view replaces them
    # (and next_escalation_at) with Redis's live paging state where it has one.
    paged: list[str]
    escalation_cycle: int
    escalation_step: int
    service_id: int
    policy_id: int | None
    nobody_reached_at: datetime | None
    # A storm incident's count of alerts (None for other incidents).
    storm_alert_count: int | None = None
    # Set by the view from paging's reads: how each person paged was reached,
    # and what happens next.
    reach: list[PersonReach] = field(default_factory=list)
    next_step: NextStep | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None

    @property
    def severity_label(self) -> str:
        return str(Severity(self.severity).label)

    @property
    def status_label(self) -> str:
        return str(Status(self.status).label)

    @property
    def nobody_reached(self) -> bool:
        """Flagged "nobody reached" (shown while nobody has acknowledged)."""
        return self.nobody_reached_at is not None and self.status == Status.TRIGGERED

    @property
    def resolved(self) -> bool:
        return self.status == Status.RESOLVED

    @property
    def time_to_acknowledge(self) -> timedelta | None:
        """Opened to first acknowledged; None if nobody acknowledged."""
        return None if self.acknowledged_at is None else self.acknowledged_at - self.opened_at

    @property
    def time_to_resolve(self) -> timedelta | None:
        return None if self.resolved_at is None else self.resolved_at - self.opened_at


@dataclass(frozen=True, slots=True)
class PersonReach:
    """One person paged at the current level, and how far their page got."""

    person: str
    state: str  # queued, sent, failed, unreachable, cancelled, paged (no page row)
    short: str  # what the row shows after the name: "✓ ntfy", "✗ no contact method"
    sentence: str  # the whole story: "sent via ntfy", then " at" ``at``
    # When the page was sent: a moment, shown in each viewer's zone (the
    # dashboard caches rows for everyone, so no rendered time is kept here).
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NextStep:
    """What happens next: ``text`` (then the moment ``until``, in the viewer's
    zone), then a countdown to ``at`` if any, then ``after``."""

    text: str
    at: datetime | None = None
    after: str = ""
    until: datetime | None = None


def open_incidents() -> QuerySet[Incident]:
    """Open incidents in rank order: the most severe first; within a severity,
    those nobody could be reached for first; then the oldest first.

    The one spelling of that order, for the dashboard, the /v1 API and MCP,
    and the status page. The ``incident_open_dashboard`` index is built on
    the same expressions, so a page of it is read from the index instead of
    sorting every open incident. ``rank`` and ``reached`` are aliases a
    keyset cursor can filter on.
    """
    return (
        Incident.objects.filter(status__in=OPEN_STATUSES)
        .alias(rank=SEVERITY_RANK, reached=NOBODY_REACHED_LAST)
        .order_by("rank", "reached", "opened_at", "id")
    )


def opened_between(
    incidents: QuerySet[Incident], first: date | None, last: date | None
) -> QuerySet[Incident]:
    """``incidents`` opened from the start of day ``first`` to the end of day
    ``last``, days in the current time zone (the one times are shown in)."""
    zone = timezone.get_current_timezone()
    if first is not None:
        incidents = incidents.filter(opened_at__gte=_midnight(first, zone))
    if last is not None:
        incidents = incidents.filter(opened_at__lt=_midnight(last + timedelta(days=1), zone))
    return incidents


def _midnight(day: date, zone: Any) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), zone)


def searched(incidents: QuerySet[Incident], text: str) -> QuerySet[Incident]:
    """``incidents`` whose title contains ``text``, whose dedup key is
    ``text``, or whose number is ``text`` (``#42`` or ``42``)."""
    term = text.strip()
    if not term:
        return incidents
    match = Q(title__icontains=term) | Q(dedup_key=term)
    number = ascii_int(term.lstrip("#"))
    if number is not None:
        match |= Q(pk=number)
    return incidents.filter(match)


def _in_status(filters: IncidentFilter) -> Q:
    if filters.status == STATUS_ALL:
        return Q()
    if filters.status:
        return Q(status=filters.status)
    # The default (open) view: a number searched for is found whatever its
    # status, so "#2" finds a resolved #2 instead of "nothing open matches".
    number = ascii_int(filters.q.strip().lstrip("#"))
    return Q(status__in=OPEN_STATUSES) | Q(pk=number) if number else Q(status__in=OPEN_STATUSES)


def matching(incidents: QuerySet[Incident], filters: IncidentFilter) -> QuerySet[Incident]:
    """``incidents`` narrowed by the dashboard's filters."""
    incidents = incidents.filter(_in_status(filters))
    if filters.service is not None:
        incidents = incidents.filter(service=filters.service)
    if filters.severity:
        incidents = incidents.filter(severity=filters.severity)
    incidents = opened_between(incidents, filters.opened_from, filters.opened_to)
    return searched(incidents, filters.q)


def listed(filters: IncidentFilter) -> QuerySet[Incident]:
    """The dashboard's incidents: open ones in rank order (open_incidents'
    order, read from its index); with resolved ones (history), newest first,
    read from the ``incident_history`` index."""
    if filters.history:
        ordered = Incident.objects.order_by("-opened_at", "-id")
    else:
        ordered = Incident.objects.alias(rank=SEVERITY_RANK, reached=NOBODY_REACHED_LAST).order_by(
            "rank", "reached", "opened_at", "id"
        )
    return matching(ordered, filters)


# Counting a whole history reads every row of it (100,000 incidents: the
# slowest part of the page); past this many the dashboard says "10,000+".
HISTORY_COUNT_LIMIT = 10_000


def history_count(filters: IncidentFilter) -> tuple[int, bool]:
    """How many incidents match, up to HISTORY_COUNT_LIMIT, and whether
    there are more."""
    # Unordered, ids only: PostgreSQL may stop after any 10,001 index entries.
    counted = listed(filters).order_by().values("pk")[: HISTORY_COUNT_LIMIT + 1].count()
    return min(counted, HISTORY_COUNT_LIMIT), counted > HISTORY_COUNT_LIMIT


# What a dashboard row reads, named as DashboardRow names it.
_ROW_FIELDS = {
    "service_name": F("service__name"),
    "acknowledger": F("acknowledged_by__username"),  # a field has the name
    "policy_id": F("service__escalation_policy_id"),
    # The names in the latest "paged" event that names who was paged.
    "paged": Subquery(
        TimelineEvent.objects.filter(
            incident=OuterRef("pk"), kind=EventKind.PAGED, data__has_key="paged"
        )
        .order_by("-created_at", "-pk")
        .values("data__paged")[:1]
    ),
    # A storm's alerts; PostgreSQL evaluates the count for storm rows only.
    "storm_alert_count": Case(
        When(
            is_storm=True,
            then=Subquery(
                StormAlert.objects.filter(storm=OuterRef("pk"))
                .order_by()
                .values("storm")
                .annotate(n=Count("pk"))
                .values("n")
            ),
        ),
        default=None,
        output_field=IntegerField(),
    ),
}
_ROW_COLUMNS = (
    "pk",
    "title",
    "severity",
    "status",
    "opened_at",
    "escalation_level",
    "next_escalation_at",
    "escalation_cycle",
    "escalation_step",
    "service_id",
    "nobody_reached_at",
    "acknowledged_at",
    "resolved_at",
)


def dashboard_incidents(filters: IncidentFilter) -> QuerySet[Incident, dict[str, Any]]:
    """The dashboard's list: incidents matching ``filters`` (open ones by
    default) in ``listed``'s order, as dicts of what a row shows
    (``dashboard_row`` makes the row)."""
    if filters == IncidentFilter():
        return _open_rows().all()
    rows: QuerySet[Incident, dict[str, Any]] = listed(filters).values(*_ROW_COLUMNS, **_ROW_FIELDS)
    return rows


@functools.cache
def _open_rows() -> QuerySet[Incident, dict[str, Any]]:
    """The unfiltered list (what nearly every dashboard request reads),
    built once per process: resolving its subqueries and ordering costs
    more than PostgreSQL's answer. Callers get a clone (``.all()``, as
    Django's generic views do with a ``queryset`` attribute), so the one
    built here is never evaluated or changed, and threads may share it. It
    holds no time or time zone: the open incidents' filter has no dates."""
    rows: QuerySet[Incident, dict[str, Any]] = listed(IncidentFilter()).values(
        *_ROW_COLUMNS, **_ROW_FIELDS
    )
    return rows


def dashboard_row(values: dict[str, Any]) -> DashboardRow:
    values["acknowledged_by"] = values.pop("acknowledger")
    paged = values.pop("paged")
    # Events are written by the engine with a list; anything else names nobody.
    names = [str(name) for name in paged] if isinstance(paged, list) else []
    return DashboardRow(paged=names, **values)


def row_of(incident: Incident) -> DashboardRow:
    """An incident as a row (the incident page shows the same paging facts)."""
    return DashboardRow(
        pk=incident.pk,
        title=incident.title,
        severity=incident.severity,
        status=incident.status,
        opened_at=incident.opened_at,
        escalation_level=incident.escalation_level,
        next_escalation_at=incident.next_escalation_at,
        service_name=incident.service.name,
        acknowledged_by=incident.acknowledged_by.get_username()
        if incident.acknowledged_by
        else None,
        paged=[],
        escalation_cycle=incident.escalation_cycle,
        escalation_step=incident.escalation_step,
        service_id=incident.service_id,
        policy_id=incident.service.escalation_policy_id,
        nobody_reached_at=incident.nobody_reached_at,
        acknowledged_at=incident.acknowledged_at,
        resolved_at=incident.resolved_at,
        storm_alert_count=incident.storm_alerts.count() if incident.is_storm else None,
    )


def service_choices() -> list[tuple[str, str]]:
    """(slug, name) of every service, by name: the dashboard's service filter."""
    return list(Service.objects.order_by("name").values_list("slug", "name"))
