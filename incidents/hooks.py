"""What other parts of triage hear about incident changes, after commit.

The services send these once their transaction has committed; paging listens
to start, stop or advance escalation. Receivers get ``incident_id`` and must
not assume they run inside the request (they may be moved to a task).
"""

from __future__ import annotations

from django.dispatch import Signal

opened = Signal()  # a new or reopened incident: page the first level
acknowledged = Signal()  # stop escalating
resolved = Signal()  # stop escalating, forget live paging state
escalated = Signal()  # page the (new) current level now


def incident_opened(incident_id: int) -> None:
    opened.send_robust(sender=None, incident_id=incident_id)


def incident_acknowledged(incident_id: int) -> None:
    acknowledged.send_robust(sender=None, incident_id=incident_id)


def incident_resolved(incident_id: int) -> None:
    resolved.send_robust(sender=None, incident_id=incident_id)


def incident_escalated(incident_id: int) -> None:
    escalated.send_robust(sender=None, incident_id=incident_id)
