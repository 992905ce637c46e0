"""JSON shapes of incidents and timeline events, shared by every API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings

from incidents.models import Incident, Severity, TimelineEvent


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _username(user: Any) -> str | None:
    return user.get_username() if user is not None else None


def incident_json(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.pk,
        "number": incident.number,
        "title": incident.title,
        "details": incident.details,
        "service": {"slug": incident.service.slug, "name": incident.service.name},
        "severity": incident.severity,
        "severity_label": Severity(incident.severity).label,
        "status": incident.status,
        "source": incident.source,
        "dedup_key": incident.dedup_key,
        "opened_at": _time(incident.opened_at),
        "acknowledged_at": _time(incident.acknowledged_at),
        "acknowledged_by": _username(incident.acknowledged_by),
        "resolved_at": _time(incident.resolved_at),
        "resolved_by": _username(incident.resolved_by),
        "escalation_level": incident.escalation_level,
        "next_escalation_at": _time(incident.next_escalation_at),
        "url": settings.BASE_URL + incident.get_absolute_url(),
    }


def event_json(event: TimelineEvent) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "actor": _username(event.actor),
        "message": event.message,
        "data": event.data,
        "at": _time(event.created_at),
    }
