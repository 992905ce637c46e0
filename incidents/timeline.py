"""Writing timeline events; used by every service that changes an incident."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction

from incidents.models import Incident, TimelineEvent
from triage import readmodel

Actor = AbstractBaseUser | AnonymousUser | None

# Rows per INSERT in bulk writes: PostgreSQL takes at most 65,535 parameters
# a statement, and a row of the widest table written in bulk (an incident)
# has about 25.
BULK_BATCH = 2000


def actor_user(actor: Actor) -> Any:
    """A user to store as actor, or None for the system and anonymous reporters."""
    return actor if actor is not None and actor.is_authenticated else None


def actor_name(actor: Actor) -> str:
    user = actor_user(actor)
    return user.get_username() if user else "triage"


def record_event(
    incident: Incident,
    kind: str,
    *,
    actor: Actor,
    now: datetime,
    message: str = "",
    data: dict[str, Any] | None = None,
) -> TimelineEvent:
    # Every change to an incident records an event: what is open changed.
    readmodel.bump_after_commit()
    return TimelineEvent.objects.create(
        incident=incident,
        kind=kind,
        actor=actor_user(actor),
        message=message,
        data=data or {},
        created_at=now,
    )


def record_events(events: list[TimelineEvent]) -> list[TimelineEvent]:
    """Write many timeline events in one INSERT (a bulk change's events). Build
    them with ``new_event``."""
    # bulk_create sends no save signals: the read model is told here, as
    # record_event tells it for one event.
    if events:
        readmodel.bump_after_commit()
    return TimelineEvent.objects.bulk_create(events, batch_size=BULK_BATCH)


def new_event(
    incident: Incident,
    kind: str,
    *,
    actor: Actor,
    now: datetime,
    message: str = "",
    data: dict[str, Any] | None = None,
) -> TimelineEvent:
    """The event ``record_event`` would write, not yet saved (for ``record_events``)."""
    return TimelineEvent(
        incident=incident,
        kind=kind,
        actor=actor_user(actor),
        message=message,
        data=data or {},
        created_at=now,
    )


def after_commit(func: Callable[..., object], *args: object) -> None:
    """Run ``func(*args)`` once the current transaction commits.

    A failure is logged, not raised: the change is committed already, and
    side effects (Redis, metrics, queued tasks) are repaired by the periodic
    reconciliation.
    """

    def callback() -> None:
        func(*args)

    callback.__qualname__ = getattr(func, "__qualname__", "callback")
    transaction.on_commit(callback, robust=True)
