"""Who is paged and when the next escalation is, for the pages and APIs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from incidents.models import Incident


@dataclass(frozen=True)
class PagingSummary:
    level: int
    next_escalation_at: datetime | None
    paged: list[str] = field(default_factory=list)  # display names of people paged now


def paging_summary(incidents: Iterable[Incident]) -> dict[int, PagingSummary]:
    """Live paging state per incident id, for a page of incidents."""
    return {
        incident.pk: PagingSummary(
            level=incident.escalation_level, next_escalation_at=incident.next_escalation_at
        )
        for incident in incidents
    }
