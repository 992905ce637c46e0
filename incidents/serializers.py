"""JSON shapes of incidents and timeline events, shared by every API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings

from incidents import storms
from incidents.models import Incident, Severity, StormAlert, TimelineEvent


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
        "is_storm": incident.is_storm,
        "storm": storms.summary(incident).as_json() if incident.is_storm else None,
    }


def storm_alert_json(alert: StormAlert) -> dict[str, Any]:
    return {
        "dedup_key": alert.dedup_key,
        "name": alert.name,
        "severity": alert.severity,
        "source": alert.source,
        "status": alert.status,
        "count": alert.count,
        "first_seen_at": _time(alert.first_seen_at),
        "last_seen_at": _time(alert.last_seen_at),
        "resolved_at": _time(alert.resolved_at),
        "split_into": alert.split_into_id,
    }


def storm_alerts_json(incident: Incident) -> list[dict[str, Any]]:
    """The alerts of a storm incident (firing first; at most storms.ALERTS_SHOWN)."""
    return (
        [storm_alert_json(alert) for alert in storms.alerts(incident)] if incident.is_storm else []
    )


def event_json(event: TimelineEvent) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "actor": _username(event.actor),
        "message": event.message,
        "data": event.data,
        "at": _time(event.created_at),
    }
