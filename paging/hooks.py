"""What paging does when an incident changes, and what it adds to the
incident pages: registered with ``incidents.hooks`` from ``PagingConfig.ready()``.

Each lifecycle hook runs inside the incident service's transaction with the
row locked (see ``incidents.hooks.Lifecycle``): the engine decides from that
row and writes its decision through ``incidents.services``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from incidents.hooks import Lifecycle, Pages
from incidents.models import Incident
from incidents.selectors import DashboardRow, row_of
from incidents.timeline import Actor, after_commit
from paging import escalation, state
from paging.selectors import (
    holds_change_at,
    maintenance_windows,
    next_steps,
    paging_summary,
    reach,
)


class PagingLifecycle(Lifecycle):
    def opened(self, incident: Incident, *, now: datetime) -> None:
        escalation.on_opened(incident, now=now)

    def opened_many(self, incidents: Sequence[Incident], *, now: datetime) -> None:
        escalation.on_opened_many(incidents, now=now)

    def acknowledged(self, incident: Incident, *, now: datetime) -> None:
        escalation.on_acknowledged(incident)

    def resolved(self, incident: Incident, *, now: datetime) -> None:
        after_commit(state.forget, incident.pk)

    def resolved_many(self, incidents: Sequence[Incident], *, now: datetime) -> None:
        after_commit(state.forget_many, [incident.pk for incident in incidents])

    def reopened(self, incident: Incident, *, now: datetime) -> None:
        # Paged from level 1 as a new incident is, once the reopen committed
        # (``start`` moves only an incident still at level 0: safe twice).
        after_commit(escalation.start, incident.pk)

    def retriggered(self, incident: Incident, *, now: datetime) -> None:
        escalation.on_retriggered(incident, now=now)

    def escalated(self, incident: Incident, *, now: datetime, actor: Actor, via: str) -> None:
        escalation.advance(incident, now=now, reason="manual", actor=actor, via=via)


class PagingPages(Pages):
    def dashboard_rows(
        self, rows: Sequence[DashboardRow], *, now: datetime, known: bool = True
    ) -> datetime | None:
        """Who is paged (Redis's live state where it has one), how each page
        went and what happens next. Constant queries for any number of rows:
        one for every page's delivery, a few for the next levels' people.
        Returns when a maintenance hold of these rows may start or end."""
        summaries = paging_summary(
            rows, known_paged={row.pk: row.paged for row in rows} if known else None
        )
        for row in rows:
            row.paged = summaries[row.pk].paged
            row.next_escalation_at = summaries[row.pk].next_escalation_at
        reached = reach(rows, {row.pk: row.paged for row in rows})
        windows = maintenance_windows(rows, now)  # one read for the holds and their end
        upcoming = next_steps(rows, now=now, windows=windows)
        for row in rows:
            row.reach = reached[row.pk]
            row.next_step = upcoming[row.pk]
        return holds_change_at(windows, now)

    def incident_page(self, incident: Incident, *, now: datetime) -> dict[str, Any]:
        row = row_of(incident)
        self.dashboard_rows([row], now=now, known=False)
        return {
            "reach": row.reach,
            "next_step": row.next_step,
            "pages": incident.pages.select_related("user").order_by("-created_at", "-pk")[:50],
        }
