"""Who is paged and when the next escalation is, for the pages and APIs."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from redis.exceptions import RedisError

from incidents.models import EventKind, TimelineEvent
from paging import state

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PagingSummary:
    level: int
    next_escalation_at: datetime | None
    paged: list[str] = field(default_factory=list)  # usernames paged at the current level
    live: bool = True  # False when read from PostgreSQL because Redis was unavailable


class HasPaging(Protocol):
    """An incident, or a row read for a list, with its durable paging fields."""

    @property
    def pk(self) -> int: ...
    @property
    def escalation_level(self) -> int: ...
    @property
    def next_escalation_at(self) -> datetime | None: ...


def paging_summary(
    incidents: Iterable[HasPaging], *, known_paged: Mapping[int, list[str]] | None = None
) -> dict[int, PagingSummary]:
    """Paging state per incident id for a page of incidents.

    From Redis (one pipelined round trip); incidents Redis does not know, or
    all of them when Redis is down, come from PostgreSQL: the names in
    ``known_paged`` when the caller's query brought them, else one query.
    """
    incidents = list(incidents)
    try:
        live = state.read_live([incident.pk for incident in incidents])
    except (RedisError, OSError):
        logger.warning("redis unavailable; paging state from PostgreSQL")
        live = {}
    summaries = {
        pk: PagingSummary(level=item.level, next_escalation_at=item.next_at, paged=item.paged)
        for pk, item in live.items()
    }
    missing = [incident for incident in incidents if incident.pk not in live]
    if missing:
        paged = (
            known_paged
            if known_paged is not None
            else _paged_from_timeline([incident.pk for incident in missing])
        )
        for incident in missing:
            summaries[incident.pk] = PagingSummary(
                level=incident.escalation_level,
                next_escalation_at=incident.next_escalation_at,
                paged=paged.get(incident.pk, []),
                live=False,
            )
    return summaries


def _paged_from_timeline(incident_ids: list[int]) -> dict[int, list[str]]:
    """The names in each incident's latest "paged" event, in one query."""
    events = (
        TimelineEvent.objects.filter(incident_id__in=incident_ids, kind=EventKind.PAGED)
        .filter(data__has_key="paged")
        .order_by("incident_id", "-created_at", "-pk")
        .distinct("incident_id")
        .values_list("incident_id", "data")
    )
    return {incident_id: list(data["paged"]) for incident_id, data in events}
