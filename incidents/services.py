"""The only code that changes an incident.

Each function is one transaction: it locks and changes the incident, writes the
timeline event in the same transaction, and defers side effects (paging,
metrics) to ``transaction.on_commit`` so nothing is announced for a change that
rolled back. Views, the API, admin actions, tasks and commands all call these.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from psycopg import errors as pg_errors

from incidents.errors import (
    DuplicateOpenIncident,
    IdempotencyConflict,
    InvalidTransition,
    NoEscalationPolicy,
)
from incidents.models import (
    OPEN_STATUSES,
    TRANSITIONS,
    EventKind,
    Incident,
    JoinedRequest,
    Service,
    Source,
    Status,
    TimelineEvent,
)
from incidents.signals import announce
from incidents.timeline import Actor, actor_name, actor_user, after_commit, record_event
from paging import escalation, state
from triage.metrics import TIME_TO_ACKNOWLEDGE_BUCKETS


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


def _replay(key: str, fingerprint: str) -> Opened | None:
    """What the first request with this Idempotency-Key got, if there was one."""
    opened = Incident.objects.filter(idempotency_key=key).first()
    if opened is not None:
        first, incident, joined = opened.request_fingerprint, opened, False
    else:
        found = JoinedRequest.objects.select_related("incident").filter(key=key).first()
        if found is None:
            return None
        first, incident, joined = found.request_fingerprint, found.incident, True
    if first != fingerprint:
        raise IdempotencyConflict(
            f"Idempotency-Key {key!r} was already used for incident #{incident.pk} with a "
            "different request. Use a new key for a new incident, or repeat the original "
            "request exactly."
        )
    return Opened(incident, created=False, deduplicated=joined)


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
      alert-repeat timeline event (``deduplicated=True``). With an
      ``idempotency_key`` too, the key is kept (``JoinedRequest``): a retry
      gets the same incident and adds no second alert repeat, even once the
      incident is resolved, and the key with another body is a conflict.

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
                replay = _replay(idempotency_key, fingerprint)
                if replay is not None:
                    return replay
            if dedup_key:
                joined = (
                    Incident.objects.select_for_update()
                    .filter(service=service, dedup_key=dedup_key, status__in=OPEN_STATUSES)
                    .first()
                )
                if joined is not None:
                    if idempotency_key and joined.idempotency_key == idempotency_key:
                        # Opened under this key by a concurrent retry, which
                        # committed between the look-up above and this lock.
                        continue  # the second attempt replays it (or refuses it)
                    if idempotency_key:
                        try:
                            with transaction.atomic():
                                JoinedRequest.objects.create(
                                    key=idempotency_key,
                                    request_fingerprint=fingerprint,
                                    incident=joined,
                                    created_at=now,
                                )
                        except IntegrityError as exc:
                            if attempt == 0 and _is_unique_violation(exc):
                                continue  # a retry of this request won; replay it
                            raise
                    record_event(
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
                        opened_by=actor_user(actor),
                    )
            except IntegrityError as exc:
                if attempt == 0 and _is_unique_violation(exc):
                    continue  # lost a race; the winner's row is committed now
                raise
            record_event(
                incident,
                EventKind.OPENED,
                actor=actor,
                now=now,
                message=f"Opened by {actor_name(actor)} via {Source(source).label}",
                data=data or {},
            )
            # Counted in Redis: incidents are opened by the web, the worker
            # (heartbeats) and commands alike, and only the web is scraped.
            after_commit(state.count, "incidents_opened", (source,))
            escalation.on_opened(incident, now=now)
            announce(incident, "opened")
            return Opened(incident, created=True)
    raise AssertionError("unreachable: the second attempt returns or raises")  # pragma: no cover


def _via(actor: Actor, via: str) -> str:
    return f"by {actor_name(actor)} from {via}" if via else ""


def _lock(incident: Incident) -> Incident:
    return (
        Incident.objects.select_for_update(of=("self",))
        .select_related("service__escalation_policy")
        .get(pk=incident.pk)
    )


def _check(incident: Incident, target: str, verb: str) -> None:
    if target not in TRANSITIONS[incident.status]:
        raise InvalidTransition(
            f"Incident #{incident.pk} is {incident.get_status_display().lower()}; "
            f"it cannot be {verb}."
        )


def acknowledge_incident(
    incident: Incident, *, actor: Actor, now: datetime | None = None, via: str = ""
) -> Incident:
    """Triggered → acknowledged. Stops escalation (on commit).

    ``via`` names where the person acted from when it was not triage's own
    pages ("a notification", "Slack"); the timeline says so.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(incident)
        _check(locked, Status.ACKNOWLEDGED, "acknowledged")
        first_ack = locked.acknowledged_at is None
        locked.status = Status.ACKNOWLEDGED
        locked.acknowledged_at = now
        locked.acknowledged_by = actor_user(actor)
        escalation.on_acknowledged(locked, now=now)
        locked.save()
        record_event(locked, EventKind.ACKNOWLEDGED, actor=actor, now=now, message=_via(actor, via))
        if first_ack:
            waited = (now - locked.opened_at).total_seconds()
            after_commit(state.observe, "time_to_acknowledge", waited, TIME_TO_ACKNOWLEDGE_BUCKETS)
        announce(locked, "acknowledged")
    return locked


def resolve_incident(
    incident: Incident,
    *,
    actor: Actor,
    now: datetime | None = None,
    message: str = "",
    via: str = "",
) -> Incident:
    """Triggered or acknowledged → resolved. Ends escalation (on commit)."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(incident)
        _check(locked, Status.RESOLVED, "resolved")
        locked.status = Status.RESOLVED
        locked.resolved_at = now
        locked.resolved_by = actor_user(actor)
        locked.next_escalation_at = None
        locked.save()
        record_event(
            locked, EventKind.RESOLVED, actor=actor, now=now, message=message or _via(actor, via)
        )
        after_commit(state.forget, locked.pk)
        announce(locked, "resolved")
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
        locked.escalation_level = locked.escalation_cycle = 0
        locked.next_escalation_at = None
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
        record_event(locked, EventKind.REOPENED, actor=actor, now=now)
        after_commit(escalation.start, locked.pk)
        announce(locked, "reopened")
    return locked


def escalate_incident(
    incident: Incident, *, actor: Actor, now: datetime | None = None, via: str = ""
) -> Incident:
    """Page the next escalation level now.

    An acknowledged incident goes back to triggered: whoever is paged next
    must acknowledge it themselves. Refused for resolved incidents and for
    services without an escalation policy (there is nobody to escalate to).
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(incident)
        if locked.status not in OPEN_STATUSES:
            raise InvalidTransition(
                f"Incident #{locked.pk} is resolved; reopen it before escalating."
            )
        if locked.service.escalation_policy_id is None:
            raise NoEscalationPolicy(
                f"{locked.service} has no escalation policy, so there is nobody to escalate "
                "to. Give the service a policy in the admin."
            )
        if locked.status == Status.ACKNOWLEDGED:
            locked.status = Status.TRIGGERED
            locked.acknowledged_at = locked.acknowledged_by = None
            locked.save()
        escalation.advance(locked, now=now, reason="manual", actor=actor, via=via)
    return locked


def set_public_title(
    incident: Incident, *, actor: Actor, title: str, now: datetime | None = None
) -> Incident:
    """Name the incident for the public status page ("" shows the default
    sentence). Noted on the timeline, so responders see what outsiders read."""
    title = " ".join(title.split())
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(incident)
        if locked.public_title == title:
            return locked
        locked.public_title = title
        locked.save(update_fields=["public_title", "updated_at"])
        message = f"Public title: {title}" if title else "Public title cleared (default shown)"
        record_event(locked, EventKind.NOTE, actor=actor, now=now, message=message)
    return locked


def add_note(
    incident: Incident, *, actor: Actor, text: str, now: datetime | None = None
) -> TimelineEvent:
    """Add a note to the timeline. Allowed whatever the incident's status."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(incident)
        locked.save(update_fields=["updated_at"])
        return record_event(locked, EventKind.NOTE, actor=actor, now=now, message=text)
