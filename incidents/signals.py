"""Announcements other apps may listen to, without ``incidents`` importing them.

``incident_changed`` is sent once the transaction that changed an incident
has committed (never for a change that rolled back), with ``incident_id``
and ``change``: "opened", "acknowledged", "resolved", "reopened" or
"escalated" (any level paged, by hand or by the escalation engine).
Receivers run in the process that made the change — a web request, a
worker task, the escalation loop — so they must only queue work (a Celery
task), never do it.
"""

from __future__ import annotations

import logging

from django.dispatch import Signal

from incidents.models import Incident
from incidents.timeline import after_commit

logger = logging.getLogger(__name__)

incident_changed = Signal()


def announce(incident: Incident, change: str) -> None:
    """Send ``incident_changed`` after the current transaction commits."""
    after_commit(_send, incident.pk, change)


def _send(incident_id: int, change: str) -> None:
    # One failing receiver must not keep the others from hearing about it.
    for receiver, result in incident_changed.send_robust(
        sender=Incident, incident_id=incident_id, change=change
    ):
        if isinstance(result, Exception):
            logger.error(
                "incident_changed receiver %s failed: %s",
                getattr(receiver, "__qualname__", receiver),
                result,
                extra={"incident_id": incident_id},
            )
