"""How apps above ``incidents`` take part in its changes and pages without
``incidents`` importing them.

An app subclasses ``Lifecycle`` (what happens when an incident changes) or
``Pages`` (what its dashboard rows and incident page show), overrides the
methods it needs, and registers an instance from its ``AppConfig.ready()``.
``paging`` registers both: it pages people when an incident opens and stops
when it is acknowledged, and it shows who was paged and what happens next.

Why a registry and not Django signals: a lifecycle hook is part of the
change, not a notification about it. It runs inside the service's
transaction with the incident's row locked, and when it fails the change
rolls back with it (``send_robust`` would swallow the error; ``send`` would
skip the receivers after it). The methods are typed, so mypy checks each
override against the call. Announcements after the commit, for anyone who
only wants to hear about a change, stay signals (``incidents.signals``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from incidents.models import Incident
from incidents.timeline import Actor

if TYPE_CHECKING:
    from incidents.selectors import DashboardRow


class Lifecycle:
    """Called by ``incidents.services`` inside the transaction that makes the
    change, after the incident's row is written, with the row locked.

    A hook may write rows of its own, and may move the incident's escalation
    only through ``incidents.services`` (it holds the lock those functions
    ask for). Side effects outside PostgreSQL go through ``after_commit``.
    """

    def opened(self, incident: Incident, *, now: datetime) -> None:
        """A new incident (not a repeat that joined one)."""

    def opened_many(self, incidents: Sequence[Incident], *, now: datetime) -> None:
        """Several new incidents, opened in one transaction (a large
        Alertmanager notification). Calls ``opened`` for each; override it to
        write their rows in bulk."""
        for incident in incidents:
            self.opened(incident, now=now)

    def acknowledged(self, incident: Incident, *, now: datetime) -> None:
        """Someone took it; ``next_escalation_at`` is the ack timeout, if any."""

    def resolved(self, incident: Incident, *, now: datetime) -> None:
        """Resolved: nothing more is due."""

    def resolved_many(self, incidents: Sequence[Incident], *, now: datetime) -> None:
        """Several incidents resolved in one transaction. Calls ``resolved``
        for each; override it to act on them at once."""
        for incident in incidents:
            self.resolved(incident, now=now)

    def reopened(self, incident: Incident, *, now: datetime) -> None:
        """Resolved → triggered, at level 0 as if new."""

    def retriggered(self, incident: Incident, *, now: datetime) -> None:
        """Acknowledged → triggered because the acknowledgement timed out, at
        level 0; ``next_escalation_at`` is still the deadline that fell due."""

    def escalated(self, incident: Incident, *, now: datetime, actor: Actor, via: str) -> None:
        """Someone asked for the next level now (an acknowledged incident is
        triggered again first)."""


class Pages:
    """Called by ``incidents.views`` to add to what its pages show."""

    def dashboard_rows(
        self, rows: Sequence[DashboardRow], *, now: datetime, known: bool = True
    ) -> datetime | None:
        """Fill in the rows of one dashboard page, in a fixed number of queries.

        ``known``: the rows' ``paged`` came from their latest "paged" event.
        Returns the moment what was filled in may change without any write
        (a maintenance window starting or ending), or None: the dashboard's
        cached list is not used past it (``triage.readmodel``).
        """
        return None

    def incident_page(self, incident: Incident, *, now: datetime) -> dict[str, Any]:
        """Template context for the incident's page."""
        return {}


_lifecycles: list[Lifecycle] = []
_pages: list[Pages] = []


def register(hooks: Lifecycle | Pages) -> None:
    """Add ``hooks`` (once per class: ``ready()`` may run again in tests)."""
    found: list[Any] = _lifecycles if isinstance(hooks, Lifecycle) else _pages
    if not any(type(known) is type(hooks) for known in found):
        found.append(hooks)


class _Everyone(Lifecycle):
    """Calls every registered ``Lifecycle``, in the order they registered."""

    def opened(self, incident: Incident, *, now: datetime) -> None:
        for hooks in _lifecycles:
            hooks.opened(incident, now=now)

    def opened_many(self, incidents: Sequence[Incident], *, now: datetime) -> None:
        for hooks in _lifecycles:
            hooks.opened_many(incidents, now=now)

    def acknowledged(self, incident: Incident, *, now: datetime) -> None:
        for hooks in _lifecycles:
            hooks.acknowledged(incident, now=now)

    def resolved(self, incident: Incident, *, now: datetime) -> None:
        for hooks in _lifecycles:
            hooks.resolved(incident, now=now)

    def resolved_many(self, incidents: Sequence[Incident], *, now: datetime) -> None:
        for hooks in _lifecycles:
            hooks.resolved_many(incidents, now=now)

    def reopened(self, incident: Incident, *, now: datetime) -> None:
        for hooks in _lifecycles:
            hooks.reopened(incident, now=now)

    def retriggered(self, incident: Incident, *, now: datetime) -> None:
        for hooks in _lifecycles:
            hooks.retriggered(incident, now=now)

    def escalated(self, incident: Incident, *, now: datetime, actor: Actor, via: str) -> None:
        for hooks in _lifecycles:
            hooks.escalated(incident, now=now, actor=actor, via=via)


class _EveryPage(Pages):
    def dashboard_rows(
        self, rows: Sequence[DashboardRow], *, now: datetime, known: bool = True
    ) -> datetime | None:
        until = [hooks.dashboard_rows(rows, now=now, known=known) for hooks in _pages]
        return min((moment for moment in until if moment is not None), default=None)

    def incident_page(self, incident: Incident, *, now: datetime) -> dict[str, Any]:
        context: dict[str, Any] = {}
        for hooks in _pages:
            context.update(hooks.incident_page(incident, now=now))
        return context


lifecycle: Lifecycle = _Everyone()
pages: Pages = _EveryPage()
