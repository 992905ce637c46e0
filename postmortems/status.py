"""What the public status page may show, and nothing more.

The page never gets model instances: it gets these small records, built from
a handful of columns, so a template change cannot leak an incident's details,
notes, dedup key or the people involved. Only services staff made public are
listed, under their public name, with only their incidents; an incident
shows the public title a responder wrote, or a generic sentence — never its
title, which monitoring (host names, paths, customers) or a stranger wrote.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import models
from django.db.models import Count
from django.utils import timezone

from incidents import selectors
from incidents.models import (
    OPEN_STATUSES,
    Incident,
    Service,
    Severity,
    Status,
    default_public_title,
)
from paging.models import MaintenanceWindow
from postmortems.models import PostMortem, PostMortemStatus

RECENT = timedelta(days=7)
OPEN_LIMIT = 100  # the status page is not the dashboard
RESOLVED_LIMIT = 50
POSTMORTEM_LIMIT = 10


class ServiceState(models.TextChoices):
    OPERATIONAL = "operational", "Operational"
    DEGRADED = "degraded", "Degraded"
    INCIDENT = "incident", "Incident"
    MAINTENANCE = "maintenance", "Maintenance"


@dataclass(frozen=True)
class PublicIncident:
    title: str
    service: str
    severity: str
    severity_label: str
    started_at: datetime
    resolved_at: datetime | None = None
    postmortem_url: str = ""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: ServiceState
    incidents: list[PublicIncident] = field(default_factory=list)


@dataclass(frozen=True)
class PublicPostMortem:
    title: str
    url: str
    started_at: datetime


@dataclass(frozen=True)
class StatusPage:
    services: list[ServiceStatus]
    open_incidents: list[PublicIncident]
    resolved: list[PublicIncident]
    postmortems: list[PublicPostMortem]
    generated_at: datetime

    @property
    def all_operational(self) -> bool:
        return all(s.state == ServiceState.OPERATIONAL for s in self.services)


def state_for(severities: Collection[str], *, in_maintenance: bool = False) -> ServiceState:
    """Critical or error open → incident; warning or info open → degraded;
    nothing open → maintenance when a window is active, else operational."""
    if {Severity.CRITICAL, Severity.ERROR} & set(severities):
        return ServiceState.INCIDENT
    if severities:
        return ServiceState.DEGRADED
    return ServiceState.MAINTENANCE if in_maintenance else ServiceState.OPERATIONAL


def _public(row: Incident, *, postmortem_url: str = "") -> PublicIncident:
    service = row.service.public_name
    return PublicIncident(
        title=row.public_title or default_public_title(service),
        service=service,
        severity=row.severity,
        severity_label=Severity(row.severity).label,
        started_at=row.opened_at,
        resolved_at=row.resolved_at,
        postmortem_url=postmortem_url,
    )


def status_page(now: datetime | None = None) -> StatusPage:
    """Everything the status page shows, in six queries."""
    now = now or timezone.now()
    maintenance = set(
        MaintenanceWindow.objects.filter(start__lte=now, end__gt=now).values_list(
            "service_id", flat=True
        )
    )
    # Deliberately not "title": the status page has no use for it.
    public_columns = (
        "public_title",
        "severity",
        "opened_at",
        "resolved_at",
        "service__public_name",
    )
    public_incidents = Incident.objects.filter(service__public=True)
    open_rows = list(
        selectors.open_incidents()
        .filter(service__public=True)
        .select_related("service")
        .only(*public_columns)[:OPEN_LIMIT]
    )
    open_severities: dict[int, set[str]] = defaultdict(set)
    for row in (
        public_incidents.filter(status__in=OPEN_STATUSES)
        .values("service_id", "severity")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        open_severities[row["service_id"]].add(row["severity"])
    open_incidents = [_public(row) for row in open_rows]
    # By service id: two services may share a public name.
    by_service: dict[int, list[PublicIncident]] = defaultdict(list)
    for open_row, incident in zip(open_rows, open_incidents, strict=True):
        by_service[open_row.service_id].append(incident)
    services = [
        ServiceStatus(
            name=service.public_name,
            state=state_for(
                open_severities.get(service.pk, set()), in_maintenance=service.pk in maintenance
            ),
            incidents=by_service.get(service.pk, []),
        )
        for service in Service.objects.filter(public=True)
        .only("pk", "public_name")
        .order_by("public_name")
    ]
    resolved_rows = (
        public_incidents.filter(status=Status.RESOLVED, resolved_at__gte=now - RECENT)
        .select_related("service", "postmortem")
        .only(*public_columns, "postmortem__id", "postmortem__status")
        .order_by("-resolved_at", "-id")[:RESOLVED_LIMIT]
    )
    resolved = [_public(row, postmortem_url=_published_url(row)) for row in resolved_rows]
    postmortems = [
        PublicPostMortem(title=pm.title, url=pm.get_absolute_url(), started_at=pm.started_at)
        for pm in _published().only("pk", "title", "started_at")[:POSTMORTEM_LIMIT]
    ]
    return StatusPage(
        services=services,
        open_incidents=open_incidents,
        resolved=resolved,
        postmortems=postmortems,
        generated_at=now,
    )


def _published_url(incident: Incident) -> str:
    post_mortem = getattr(incident, "postmortem", None)
    if post_mortem is not None and post_mortem.status == PostMortemStatus.PUBLISHED:
        return str(post_mortem.get_absolute_url())
    return ""


def _published() -> models.QuerySet[PostMortem]:
    return PostMortem.objects.filter(status=PostMortemStatus.PUBLISHED).order_by(
        "-started_at", "-pk"
    )
