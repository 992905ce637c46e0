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
