"""The only code that changes an incident.

Each function is one transaction: it locks and changes the incident, writes the
timeline event in the same transaction, and defers side effects (paging,
metrics) to ``transaction.on_commit`` so nothing is announced for a change that
rolled back. Views, the API, admin actions, tasks and commands all call these.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from psycopg import errors as pg_errors

from incidents import hooks
from incidents.errors import DuplicateOpenIncident, IdempotencyConflict, InvalidTransition
from incidents.models import (
    OPEN_STATUSES,
    TRANSITIONS,
    EventKind,
    Incident,
    Service,
    Source,
    Status,
    TimelineEvent,
)
from triage import metrics

Actor = AbstractBaseUser | AnonymousUser | None


def _user(actor: Actor) -> Any:
    """A user to store as actor, or None for the system and anonymous reporters."""
    return actor if actor is not None and actor.is_authenticated else None


def _name(actor: Actor) -> str:
    user = _user(actor)
    return user.get_username() if user else "triage"


def _record(
    incident: Incident,
    kind: str,
    *,
    actor: Actor,
    now: datetime,
    message: str = "",
    data: dict[str, Any] | None = None,
) -> TimelineEvent:
    return TimelineEvent.objects.create(
        incident=incident,
        kind=kind,
        actor=_user(actor),
        message=message,
        data=data or {},
        created_at=now,
    )


def _after_commit(callback: Callable[[], None]) -> None:
    transaction.on_commit(callback, robust=True)


@dataclass(frozen=True)
class Opened:
    incident: Incident
    created: bool
    # True when the request joined an already-open incident with its dedup key.
    deduplicated: bool = False


def request_fingerprint(
    *, service: Service, title: str, severity: str, details: str, dedup_key: str
) -> str:
    canonical = json.dumps(
        {
            "service": service.pk,
            "title": title,
            "severity": severity,
            "details": details,
            "dedup_key": dedup_key,
        },
        sort_keys=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _is_unique_violation(exc: IntegrityError) -> bool:
    return isinstance(exc.__cause__, pg_errors.UniqueViolation)


def open_incident(
    *,
    service: Service,
    title: str,
    severity: str,
    details: str = "",
    source: str = Source.API,
    dedup_key: str = "",
    idempotency_key: str | None = None,
    actor: Actor = None,
    data: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Opened:
    """Open an incident, or return the one this request already opened or joins.

    - Same ``idempotency_key`` and same content: the incident created by the
      first request (``created=False``). Same key, different content:
      ``IdempotencyConflict``.
    - ``dedup_key`` of an open incident on the service: that incident, with an
      alert-repeat timeline event (``deduplicated=True``).

    Concurrency: two requests racing with the same idempotency or dedup key
    both try to insert; the unique indexes let exactly one succeed. The loser's
    insert fails with a unique violation (it waits for the winner's commit),
    rolls back to its savepoint and looks again, now finding the winner's row.
    """
    now = now or timezone.now()
    fingerprint = request_fingerprint(
        service=service, title=title, severity=severity, details=details, dedup_key=dedup_key
    )
    for attempt in range(2):
        with transaction.atomic():
            if idempotency_key:
                replay = Incident.objects.filter(idempotency_key=idempotency_key).first()
                if replay is not None:
                    if replay.request_fingerprint != fingerprint:
                        raise IdempotencyConflict(
                            f"Idempotency-Key {idempotency_key!r} was already used for "
                            f"incident #{replay.pk} with a different request. Use a new key "
                            "for a new incident, or repeat the original request exactly."
                        )
                    return Opened(replay, created=False)
            if dedup_key:
                joined = (
                    Incident.objects.select_for_update()
                    .filter(service=service, dedup_key=dedup_key, status__in=OPEN_STATUSES)
                    .first()
                )
                if joined is not None:
                    _record(
                        joined,
                        EventKind.ALERT,
                        actor=actor,
                        now=now,
                        message=title,
                        data={"source": source, **(data or {})},
                    )
                    return Opened(joined, created=False, deduplicated=True)
            try:
                with transaction.atomic():
                    incident = Incident.objects.create(
                        service=service,
                        title=title,
                        details=details,
                        severity=severity,
                        source=source,
                        dedup_key=dedup_key,
                        idempotency_key=idempotency_key or None,
                        request_fingerprint=fingerprint,
                        opened_at=now,
                        opened_by=_user(actor),
                    )
            except IntegrityError as exc:
                if attempt == 0 and _is_unique_violation(exc):
                    continue  # lost a race; the winner's row is committed now
                raise
            _record(
                incident,
                EventKind.OPENED,
                actor=actor,
                now=now,
                message=f"Opened by {_name(actor)} via {Source(source).label}",
                data=data or {},
            )
            _after_commit(metrics.INCIDENTS_OPENED.labels(source=source).inc)
            _after_commit(partial(hooks.incident_opened, incident.pk))
            return Opened(incident, created=True)
    raise AssertionError("unreachable: the second attempt returns or raises")  # pragma: no cover


def _lock(incident: Incident) -> Incident:
    return Incident.objects.select_for_update().select_related("service").get(pk=incident.pk)


def _check(incident: Incident, target: str, verb: str) -> None:
    if target not in TRANSITIONS[incident.status]:
        raise InvalidTransition(
            f"Incident #{incident.pk} is {incident.get_status_display().lower()}; "
            f"it cannot be {verb}."
        )


def acknowledge_incident(
    incident: Incident, *, actor: Actor, now: datetime | None = None
) -> Incident:
    """Triggered → acknowledged. Stops escalation (on commit)."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(incident)
        _check(locked, Status.ACKNOWLEDGED, "acknowledged")
        first_ack = locked.acknowledged_at is None
        locked.status = Status.ACKNOWLEDGED
        locked.acknowledged_at = now
        locked.acknowledged_by = _user(actor)
        locked.next_escalation_at = None
        locked.save()
        _record(locked, EventKind.ACKNOWLEDGED, actor=actor, now=now)
        if first_ack:
            waited = (now - locked.opened_at).total_seconds()
            _after_commit(lambda: metrics.TIME_TO_ACKNOWLEDGE.observe(waited))
        _after_commit(lambda: hooks.incident_acknowledged(locked.pk))
    return locked


def resolve_incident(
    incident: Incident, *, actor: Actor, now: datetime | None = None, message: str = ""
) -> Incident:
    """Triggered or acknowledged → resolved. Ends escalation (on commit)."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(incident)
        _check(locked, Status.RESOLVED, "resolved")
        locked.status = Status.RESOLVED
        locked.resolved_at = now
        locked.resolved_by = _user(actor)
        locked.next_escalation_at = None
        locked.save()
        _record(locked, EventKind.RESOLVED, actor=actor, now=now, message=message)
        _after_commit(lambda: hooks.incident_resolved(locked.pk))
    return locked


def reopen_incident(incident: Incident, *, actor: Actor, now: datetime | None = None) -> Incident:
    """Resolved → triggered, paging from the first level again.

    Refused when another open incident has taken the same dedup key since.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(incident)
        if locked.status != Status.RESOLVED:
            raise InvalidTransition(
                f"Incident #{locked.pk} is {locked.get_status_display().lower()}; "
                "only a resolved incident can be reopened."
            )
        locked.status = Status.TRIGGERED
        locked.acknowledged_at = locked.acknowledged_by = None
        locked.resolved_at = locked.resolved_by = None
        locked.escalation_level = 0
        try:
            with transaction.atomic():
                locked.save()
        except IntegrityError as exc:
            if not _is_unique_violation(exc):
                raise
            raise DuplicateOpenIncident(
                f"Incident #{locked.pk} cannot be reopened: another open incident on "
                f"{locked.service} has dedup key {locked.dedup_key!r}."
            ) from None
        _record(locked, EventKind.REOPENED, actor=actor, now=now)
        _after_commit(lambda: hooks.incident_opened(locked.pk))
    return locked


def escalate_incident(
    incident: Incident, *, actor: Actor, now: datetime | None = None, reason: str = "manual"
) -> Incident:
    """Move an open incident to its next escalation level now.

    An acknowledged incident goes back to triggered: whoever is paged next
    must acknowledge it themselves.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(incident)
        if locked.status not in OPEN_STATUSES:
            raise InvalidTransition(
                f"Incident #{locked.pk} is resolved; reopen it before escalating."
            )
        was = locked.get_status_display().lower()
        locked.status = Status.TRIGGERED
        locked.acknowledged_at = locked.acknowledged_by = None
        locked.escalation_level += 1
        locked.save()
        _record(
            locked,
            EventKind.ESCALATED,
            actor=actor,
            now=now,
            message=f"Escalated to level {locked.escalation_level} by {_name(actor)}",
            data={"level": locked.escalation_level, "reason": reason, "was": was},
        )
        _after_commit(lambda: metrics.ESCALATIONS.labels(reason=reason).inc())
        _after_commit(lambda: hooks.incident_escalated(locked.pk))
    return locked


def add_note(
    incident: Incident, *, actor: Actor, text: str, now: datetime | None = None
) -> TimelineEvent:
    """Add a note to the timeline. Allowed whatever the incident's status."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(incident)
        locked.save(update_fields=["updated_at"])
        return _record(locked, EventKind.NOTE, actor=actor, now=now, message=text)
