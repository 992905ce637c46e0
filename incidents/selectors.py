"""Reads for pages and the API. Each brings its own joins, so a list costs a
fixed number of queries however many incidents it shows."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from incidents.models import (
    OPEN_STATUSES,
    SEVERITY_RANK,
    Incident,
    Service,
    Severity,
    TimelineEvent,
)


@dataclass(frozen=True)
class IncidentFilter:
    service: Service | None = None
    severity: str = ""
    status: str = ""
    q: str = ""


# What the dashboard's rows show (and the paging fallback reads): not the
# details, fingerprints and audit columns of every row, every few seconds.
LIST_FIELDS = (
    "title",
    "severity",
    "status",
    "opened_at",
    "escalation_level",
    "next_escalation_at",
    "service__name",
    "acknowledged_by__username",
)


def open_incidents(filters: IncidentFilter | None = None) -> QuerySet[Incident]:
    """Open incidents, most severe first, oldest first within a severity."""
    filters = filters or IncidentFilter()
    incidents = Incident.objects.filter(status__in=OPEN_STATUSES)
    if filters.service is not None:
        incidents = incidents.filter(service=filters.service)
    if filters.severity:
        incidents = incidents.filter(severity=filters.severity)
    if filters.status:
        incidents = incidents.filter(status=filters.status)
    if filters.q:
        term = filters.q.strip()
        match = Q(title__icontains=term) | Q(dedup_key=term)
        if term.lstrip("#").isdigit():
            match |= Q(pk=int(term.lstrip("#")))
        incidents = incidents.filter(match)
    return (
        incidents.select_related("service", "acknowledged_by")
        .only(*LIST_FIELDS)
        .alias(rank=SEVERITY_RANK)
        .order_by("rank", "opened_at", "id")
    )


def open_counts_by_severity() -> dict[str, int]:
    """Open incidents per severity (all severities present, zeros included)."""
    rows = (
        Incident.objects.filter(status__in=OPEN_STATUSES)
        .values("severity")
        .annotate(n=Count("*"))  # COUNT(*): an index-only scan of incident_open_severity
        .order_by()
    )
    counts = dict.fromkeys(Severity.values, 0)
    counts.update({row["severity"]: row["n"] for row in rows})
    return counts


def incident_detail(pk: int) -> Incident:
    """One incident with everything its page shows; raises Incident.DoesNotExist."""
    return Incident.objects.select_related(
        "service", "opened_by", "acknowledged_by", "resolved_by"
    ).get(pk=pk)


def timeline(incident: Incident) -> QuerySet[TimelineEvent]:
    return incident.timeline.select_related("actor").order_by("created_at", "pk")


def services() -> QuerySet[Service]:
    return Service.objects.order_by("name")
