"""The only code that changes an incident.

Each function is one transaction: it locks and changes the incident, writes the
timeline event in the same transaction, and defers side effects (Redis,
metrics, announcements) to ``transaction.on_commit`` so nothing is announced
for a change that rolled back. Views, the API, admin actions, tasks and
commands all call these.

Paging takes part through the hooks it registers (``incidents.hooks``), called
in the same transaction with the row locked. Its engine decides who to page
and when to decide again, and writes that decision through the escalation
functions at the end of this module, so status, level and deadline have this
one writer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from psycopg import errors as pg_errors

from incidents import hooks, hotpath, storms
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
    StormAlert,
    StormAlertStatus,
    TimelineEvent,
)
from incidents.signals import announce
from incidents.timeline import (
    Actor,
    actor_name,
    actor_user,
    after_commit,
    new_event,
    record_event,
)
from triage import counters, readmodel
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


class _LostRace(IntegrityError):
    """A concurrent request committed the row this one was about to write."""


@contextmanager
def _lost_race_on_unique_violation() -> Iterator[None]:
    try:
        yield
    except IntegrityError as exc:
        if _is_unique_violation(exc):
            raise _LostRace(str(exc)) from exc
        raise


Result = TypeVar("Result")


def _retry_once_on_lost_race(attempt: Callable[[bool], Result]) -> Result:
    """``attempt(False)`` in a transaction, and ``attempt(True)`` once more
    if it lost a race (a retry may skip a shortcut that lost).

    Why once is enough: the loser's insert waited on the unique index until
    the winner committed, so in its second transaction the winner's row is
    visible and the look-ups find it (replay or join) before any insert. A
    second loss is a real error and is raised (a ``_LostRace`` is an
    ``IntegrityError``). The exception leaves the first transaction, which
    rolls back: nothing of the lost attempt is kept.
    """
    try:
        with transaction.atomic():
            return attempt(False)
    except _LostRace:
        pass
    with transaction.atomic():
        return attempt(True)


@dataclass(frozen=True)
class _Request:
    """One ``open_incident`` call, as each attempt needs it."""

    service: Service
    title: str
    severity: str
    details: str
    source: str
    dedup_key: str
    idempotency_key: str
    actor: Actor
    data: dict[str, Any]
    now: datetime
    fingerprint: str


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


def _keep_joined_key(request: _Request, joined: Incident) -> None:
    """Remember that the request's Idempotency-Key joined ``joined``."""
    if not request.idempotency_key:
        return
    if joined.idempotency_key == request.idempotency_key:
        # Opened under this key by a concurrent retry that committed
        # between the replay look-up and this lock: the next attempt
        # replays it (or refuses it).
        raise _LostRace(f"incident #{joined.pk} was opened with this key meanwhile")
    with _lost_race_on_unique_violation():  # a retry of this request joined first
        JoinedRequest.objects.create(
            key=request.idempotency_key,
            request_fingerprint=request.fingerprint,
            incident=joined,
            created_at=request.now,
        )


def _join(request: _Request) -> Opened | None:
    """Add the alert to the open incident with the request's dedup key, if any.

    The incident's row is locked until the transaction ends, so a resolve
    cannot slip between finding it open and recording the repeat.
    """
    joined = (
        Incident.objects.select_for_update()
        .filter(service=request.service, dedup_key=request.dedup_key, status__in=OPEN_STATUSES)
        .first()
    )
    if joined is None:
        return None
    _keep_joined_key(request, joined)
    record_event(
        joined,
        EventKind.ALERT,
        actor=request.actor,
        now=request.now,
        message=request.title,
        data={"source": request.source, **request.data},
    )
    return Opened(joined, created=False, deduplicated=True)


def repeat_alert(
    *,
    service: Service,
    dedup_key: str,
    title: str,
    source: str,
    data: dict[str, Any],
    now: datetime,
) -> int | None:
    """An alert repeat from monitoring (no actor, no idempotency key): the
    alert-repeat event ``open_incident`` records when ``dedup_key`` has an
    open incident on ``service``, written in one statement
    (``incidents.hotpath.record_repeat``). For monitored sources
    (``storms.MANAGED_SOURCES``) the same statement otherwise counts a
    trigger of the key firing in the service's storm, as ``storms.join``
    does for a key it lists. Returns the incident's (or storm's) id, or None when neither
    matched: then nothing was written and the caller opens one with
    ``open_alert``, which settles the races of a new incident.

    Concurrency: see ``hotpath``; a resolve committing first leaves nothing
    to join (None), one committing after sees the repeat.

    The read model is not bumped: the dashboard shows nothing a repeat
    changes (its rows name the people paged, never alert repeats), so its
    cached lists stay right.
    """
    if not dedup_key:
        return None
    return hotpath.record_repeat(
        service_id=service.pk,
        dedup_key=dedup_key,
        message=title,
        data={"source": source, **data},
        now=now,
        storms=source in storms.MANAGED_SOURCES,
    )


@dataclass(frozen=True)
class Landed:
    """Where a monitored alert landed (``open_alert``): the incident it opened
    (``created``), or the open incident or storm it joined."""

    incident_id: int
    created: bool


def open_alert(
    *,
    service: Service,
    title: str,
    severity: str,
    details: str,
    source: str,
    dedup_key: str,
    data: dict[str, Any],
    now: datetime,
) -> Landed:
    """A new alert from monitoring (no actor, no idempotency key) whose dedup
    key ``repeat_alert`` just found no home for: open its incident, or join
    the incident opened or the storm it joined since. What ``open_incident``
    does for such an alert, in one transaction that sends only the statements
    a new incident needs: ``repeat_alert``'s look-ups are not made again
    outside the service's lock.

    Statements for a monitored source (``storms.MANAGED_SOURCES``): the
    service's lock, ``repeat_alert``'s statement again under it, the storm's
    room (``storms.room``), then the incident and its timeline row, and what
    the ``opened`` hooks write. Paging starts after the commit. Called
    without ``repeat_alert`` first, it does the same (a key with a home is
    joined under the lock).

    Concurrency: the service's lock orders this request after any other that
    opened or stormed an alert on the service (``incidents.storms``), so the
    repeat statement under it sees an incident opened with this key since
    ``repeat_alert`` ran, and joins it. Other sources take no service lock:
    two requests racing with the same new key both insert, the partial unique
    index of open dedup keys lets one win, and the loser's retry finds the
    winner's incident with the repeat statement (``_retry_once_on_lost_race``).
    A resolve committing meanwhile leaves nothing to join: a new incident is
    opened, as ``open_incident`` does.
    """
    request = _Request(
        service=service,
        title=title,
        severity=severity,
        details=details,
        source=source,
        dedup_key=dedup_key,
        idempotency_key="",
        actor=None,
        data=data,
        now=now,
        fingerprint=request_fingerprint(
            service=service, title=title, severity=severity, details=details, dedup_key=dedup_key
        ),
    )
    return _retry_once_on_lost_race(lambda retrying: _open_alert(request, retrying=retrying))


def _open_alert(request: _Request, *, retrying: bool) -> Landed:
    managed = request.source in storms.MANAGED_SOURCES
    if managed:
        storm = _lock_service_unless_storming(request, retrying=retrying)
        if storm is not None:
            return Landed(storm.pk, created=False)
    joined = repeat_alert(
        service=request.service,
        dedup_key=request.dedup_key,
        title=request.title,
        source=request.source,
        data=request.data,
        now=request.now,
    )
    if joined is not None:
        return Landed(joined, created=False)
    if managed:
        room = storms.room(
            request.service, [request.dedup_key], source=request.source, now=request.now
        )
        if not room.allowed and room.storm is not None:
            storms.join(room.storm, [_alerted(request, request.source)], now=request.now)
            if room.new_storm:
                storms.page_new_storm(room.storm, now=request.now)
            return Landed(room.storm.pk, created=False)
    return Landed(_insert(request).incident.pk, created=True)


def _lock_service_unless_storming(request: _Request, *, retrying: bool) -> Incident | None:
    """Take the service's lock (``storms.lock_service``), or join the
    service's storm without it and return the storm.

    The lock is taken at once when it is free: no statement more than the
    lock itself. When another new alert of the service holds it, which is
    what a storm looks like, or when this process saw the service storm
    lately (``storms.stormed_lately``: then the lock-free join is tried
    first, two statements instead of the locked path's seven), a storm that
    is storming is joined without waiting (``storms.join_storming``, which
    says why no race can break the threshold or lose an alert, whichever
    order the two are tried in); otherwise this waits for the lock. If the
    key has an incident of its own now, opened since ``repeat_alert``
    looked, the attempt rolls back (the storm's share lock must not be held
    while waiting for the service's lock, which comes first in the lock
    order) and the retry waits for the lock, under which the repeat
    statement joins that incident.
    """
    if not retrying:
        if not storms.stormed_lately(request.service) and storms.try_lock_service(request.service):
            return None
        storm = _join_storming(request)
        if storm is not None:
            return storm
    storms.lock_service(request.service)
    return None


def _join_storming(request: _Request) -> Incident | None:
    """``storms.join_storming``; an incident of the key's own opened
    meanwhile is a lost race (the caller's retry finds it)."""
    try:
        return storms.join_storming(
            request.service, _alerted(request, request.source), now=request.now
        )
    except storms.IncidentOpenedMeanwhile as exc:
        raise _LostRace(str(exc)) from exc


def _insert(request: _Request) -> Opened:
    """A new incident; a unique violation means a concurrent request won."""
    with _lost_race_on_unique_violation():
        incident = Incident.objects.create(
            service=request.service,
            title=request.title,
            details=request.details,
            severity=request.severity,
            source=request.source,
            dedup_key=request.dedup_key,
            idempotency_key=request.idempotency_key or None,
            request_fingerprint=request.fingerprint,
            opened_at=request.now,
            opened_by=actor_user(request.actor),
        )
    record_event(
        incident,
        EventKind.OPENED,
        actor=request.actor,
        now=request.now,
        message=f"Opened by {actor_name(request.actor)} via {Source(request.source).label}",
        data=request.data,
    )
    # Counted in Redis: incidents are opened by the web, the worker
    # (heartbeats) and commands alike, and only the web is scraped.
    after_commit(counters.count, "incidents_opened", (request.source,))
    hooks.lifecycle.opened(incident, now=request.now)
    announce(incident, "opened")
    return Opened(incident, created=True)


def _open(request: _Request) -> Opened:
    if request.idempotency_key:
        replay = _replay(request.idempotency_key, request.fingerprint)
        if replay is not None:
            return replay
    if request.dedup_key:
        joined = _join(request)
        if joined is not None:
            return joined
        if request.source in storms.MANAGED_SOURCES:
            return _open_or_join_storm(request)
    return _insert(request)


def _open_or_join_storm(request: _Request) -> Opened:
    """A new monitored alert: its own incident while the service is under its
    storm threshold, else it joins the service's storm (incidents.storms).

    Once the storm is storming, a trigger joins it without the service's
    lock (``storms.join_storming``: a repeat, or a new alert). Anything else
    is decided under it: first look again for an open incident with the key
    (one that held the lock before this request may have opened it), then
    count. So an alert never lives in both an incident and the storm, and the
    threshold is never overshot.
    """
    if not request.idempotency_key:
        storm = _join_storming(request)
        if storm is not None:
            return Opened(storm, created=False, deduplicated=True)
    storms.lock_service(request.service)
    joined = _join(request)
    if joined is not None:
        return joined
    room = storms.room(request.service, [request.dedup_key], source=request.source, now=request.now)
    if room.allowed or room.storm is None:
        return _insert(request)
    _keep_joined_key(request, room.storm)
    storms.join(room.storm, [_alerted(request, request.source)], now=request.now)
    if room.new_storm:
        storms.page_new_storm(room.storm, now=request.now)
    return Opened(room.storm, created=False, deduplicated=True)


def _alerted(alert: _Request | Alerting, source: str) -> storms.Alerted:
    return storms.Alerted(
        dedup_key=alert.dedup_key,
        title=alert.title,
        severity=alert.severity,
        details=alert.details,
        source=source,
    )


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
    its transaction rolls back and it looks again, now finding the winner's
    row (``_retry_once_on_lost_race``).
    """
    request = _Request(
        service=service,
        title=title,
        severity=severity,
        details=details,
        source=source,
        dedup_key=dedup_key,
        idempotency_key=idempotency_key or "",
        actor=actor,
        data=data or {},
        now=now or timezone.now(),
        fingerprint=request_fingerprint(
            service=service, title=title, severity=severity, details=details, dedup_key=dedup_key
        ),
    )
    return _retry_once_on_lost_race(lambda retrying: _open(request))


# --- many alerts at once (a large Alertmanager notification) ------------------

# For callers that open in bulk inside a transaction of their own
# (``open_or_join_many``): the whole transaction must roll back.
LostRace = _LostRace


@dataclass(frozen=True)
class Alerting:
    """One alert for ``open_or_join_many``: what ``open_incident`` takes, from
    monitoring (no actor, no idempotency key)."""

    dedup_key: str
    title: str
    severity: str
    details: str
    data: dict[str, Any]


def lock_open_incidents(service: Service, dedup_keys: Sequence[str]) -> dict[str, Incident]:
    """The service's open incidents with these dedup keys, by key, each locked
    until the transaction ends: one query, however many keys.

    The rows are locked in id order (PostgreSQL locks them as the sorted rows
    come out). Why: two notifications sharing incidents (an Alertmanager HA
    pair sends every notification twice) then lock their common rows in the
    same order, so neither can hold a row the other waits for while waiting
    for one the other holds — they cannot deadlock; the second waits for the
    first to commit. A row resolved meanwhile no longer matches once its lock
    is granted (PostgreSQL re-checks the WHERE), so it is left out, as
    ``open_incident`` would not join it either.
    """
    found = (
        Incident.objects.select_for_update()
        .filter(service=service, dedup_key__in=list(dedup_keys), status__in=OPEN_STATUSES)
        .order_by("pk")
    )
    locked: dict[str, Incident] = {}
    for incident in found:
        incident.service = service  # hooks read it; spares a query per row
        locked[incident.dedup_key] = incident
    return locked


def record_events_in_bulk(events: Sequence[TimelineEvent]) -> None:
    """``record_events`` for the thousands of events of a large Alertmanager
    notification or an escalation storm: one COPY (``incidents.hotpath``);
    the events' ids are not read back."""
    if events:
        readmodel.bump_after_commit()  # as record_events tells the read model
        hotpath.insert_new(events)


def open_or_join_many(
    *,
    service: Service,
    source: str,
    alerts: Sequence[Alerting],
    locked: dict[str, Incident],
    now: datetime,
) -> list[Opened]:
    """``open_incident`` for many alerts in one go, in the caller's transaction,
    which has locked the open incidents with ``lock_open_incidents``.

    An alert whose dedup key has an open incident in ``locked`` joins it (an
    alert-repeat event); the others open one each. The dedup keys must be
    distinct. Whatever the number of alerts: one COPY of the incidents (their
    ids reserved first) and one of their timeline events, plus what the
    ``opened_many`` hooks write. Results are in the order of ``alerts``.

    Concurrency: a request that opened an incident with one of these keys
    since the lock makes the COPY wait for its commit and fail on the
    unique index of open dedup keys: ``LostRace`` is raised and the caller's
    whole transaction must roll back. Trying again then finds the winner's
    incidents in ``lock_open_incidents`` (see ``_retry_once_on_lost_race``).
    New incidents are inserted in the order of ``alerts``; callers that sort
    them by dedup key make two such inserts wait on each other in key order,
    so they cannot deadlock either.

    Storms: for monitoring's sources the caller also holds the service's lock
    (``storms.lock_service``, taken *before* ``lock_open_incidents``, the
    storm lock order). New alerts beyond the service's storm threshold join
    its storm incident (``storms.room``) instead of opening their own, in the
    order of ``alerts``; their results name the storm.
    """
    if len({alert.dedup_key for alert in alerts}) != len(alerts):
        raise ValueError("open_or_join_many needs distinct dedup keys")
    new = [alert for alert in alerts if alert.dedup_key not in locked]
    room = storms.Room(len(new))
    if new and source in storms.MANAGED_SOURCES:
        room = storms.room(service, [alert.dedup_key for alert in new], source=source, now=now)
        if room.storm is not None:
            storms.join(room.storm, [_alerted(a, source) for a in new[room.allowed :]], now=now)
        new = new[: room.allowed]
    with transaction.atomic(), _lost_race_on_unique_violation():
        # One COPY (incidents.hotpath), not the ORM's bulk_create: measured.
        created = [
            Incident(
                service=service,
                title=alert.title,
                details=alert.details,
                severity=alert.severity,
                source=source,
                dedup_key=alert.dedup_key,
                request_fingerprint=request_fingerprint(
                    service=service,
                    title=alert.title,
                    severity=alert.severity,
                    details=alert.details,
                    dedup_key=alert.dedup_key,
                ),
                opened_at=now,
            )
            for alert in new
        ]
        hotpath.insert_new(created, with_ids=True)
    opened = {incident.dedup_key: incident for incident in created}
    _record_opened_or_joined(alerts, opened, locked, source=source, now=now)
    if created:
        after_commit(counters.count, "incidents_opened", (source,), len(created))
        hooks.lifecycle.opened_many(created, now=now)
        for incident in created:
            announce(incident, "opened")
    if room.new_storm and room.storm is not None:
        storms.page_new_storm(room.storm, now=now)
    homes = {key: Opened(incident, created=True) for key, incident in opened.items()}
    homes |= {
        key: Opened(incident, created=False, deduplicated=True) for key, incident in locked.items()
    }
    if room.storm is not None:
        stormed = Opened(room.storm, created=False, deduplicated=True)
        homes |= {alert.dedup_key: stormed for alert in alerts if alert.dedup_key not in homes}
    return [homes[alert.dedup_key] for alert in alerts]


def _record_opened_or_joined(
    alerts: Sequence[Alerting],
    opened: dict[str, Incident],
    locked: dict[str, Incident],
    *,
    source: str,
    now: datetime,
) -> None:
    """The timeline events of ``open_or_join_many``: one INSERT. Alerts that
    joined a storm are its StormAlert rows instead."""
    label = Source(source).label
    record_events_in_bulk(
        [
            new_event(
                opened[alert.dedup_key],
                EventKind.OPENED,
                actor=None,
                now=now,
                message=f"Opened by {actor_name(None)} via {label}",
                data=alert.data,
            )
            if alert.dedup_key in opened
            else new_event(
                locked[alert.dedup_key],
                EventKind.ALERT,
                actor=None,
                now=now,
                message=alert.title,
                data={"source": source, **alert.data},
            )
            for alert in alerts
            if alert.dedup_key in opened or alert.dedup_key in locked
        ]
    )


def resolve_many(incidents: Sequence[Incident], *, now: datetime, message: str) -> None:
    """``resolve_incident`` for open incidents the caller has locked
    (``lock_open_incidents``), by the system: one UPDATE and one INSERT of
    their timeline events, whatever their number (an alert storm ending
    resolves thousands at once)."""
    if not incidents:
        return
    with transaction.atomic():
        Incident.objects.filter(pk__in=[incident.pk for incident in incidents]).update(
            status=Status.RESOLVED,
            resolved_at=now,
            resolved_by=None,
            next_escalation_at=None,
            updated_at=timezone.now(),  # as auto_now would on save()
        )
        for incident in incidents:
            incident.status = Status.RESOLVED
            incident.resolved_at = now
            incident.resolved_by = None
            incident.next_escalation_at = None
        record_events_in_bulk(
            [
                new_event(incident, EventKind.RESOLVED, actor=None, now=now, message=message)
                for incident in incidents
            ]
        )
        hooks.lifecycle.resolved_many(incidents, now=now)
        for incident in incidents:
            announce(incident, "resolved")


def resolve_storm_alerts(
    service: Service, dedup_keys: Sequence[str], *, now: datetime, message: str
) -> Incident | None:
    """Monitoring says these alerts resolved, and none has an open incident:
    resolve those that fire in the service's open storm, and the storm itself
    once none of its alerts fires. Returns the storm if one of the keys fired
    in it (None: the resolve is dropped, as Events API v2 drops it).

    The storm's row lock serialises this with joins (which take it after the
    service's) and splits, so "nothing fires any more" is decided on the
    committed list: an alert joining concurrently either committed first (and
    keeps the storm open) or waits and finds the storm resolved.
    """
    with transaction.atomic():
        storm = storms.open_storm_locked(service)
        if storm is None or not storms.resolve_alerts(storm, dedup_keys, now=now):
            return None
        if not storms.still_firing(storm):
            resolve_incident(storm, actor=None, now=now, message=message)
        return storm


def split_storm_alert(alert: StormAlert, *, actor: Actor, now: datetime | None = None) -> Incident:
    """Take a firing alert out of its storm into an incident of its own,
    opened (and paged) as if the alert had just arrived; the storm's timeline
    says who split it and where it went. Later triggers of its dedup key join
    that incident. The storm resolves if nothing else fires in it.

    Under the storm's row lock, like every change to its alerts: a resolve
    racing this either resolved the alert first (and this refuses) or finds it
    split.
    """
    now = now or timezone.now()
    with transaction.atomic():
        storm = _lock(alert.storm)
        locked = StormAlert.objects.select_for_update().get(pk=alert.pk)
        if storm.status == Status.RESOLVED or locked.status != StormAlertStatus.FIRING:
            raise InvalidTransition(
                f"{locked.name} is {locked.get_status_display().lower()}; only an alert still "
                "firing in an open storm can be split out."
            )
        incident = _insert_split(storm, locked, actor=actor, now=now).incident
        locked.status, locked.split_into = StormAlertStatus.SPLIT, incident
        locked.save(update_fields=["status", "split_into"])
        record_event(
            storm,
            EventKind.NOTE,
            actor=actor,
            now=now,
            message=f"Split out {locked.name} into #{incident.pk}",
            data={"split_out": locked.dedup_key, "incident": incident.pk},
        )
        if not storms.still_firing(storm):
            resolve_incident(
                storm, actor=actor, now=now, message="Every alert in the storm was split out."
            )
    return incident


def _insert_split(storm: Incident, alert: StormAlert, *, actor: Actor, now: datetime) -> Opened:
    try:
        return _insert(
            _Request(
                service=storm.service,
                title=alert.name,
                severity=alert.severity,
                details=alert.details,
                source=alert.source,
                dedup_key=alert.dedup_key,
                idempotency_key="",
                actor=actor,
                data={"split_from": storm.pk},
                now=now,
                fingerprint="",
            )
        )
    except _LostRace:
        raise DuplicateOpenIncident(
            f"{alert.name} cannot be split out: an open incident on {storm.service} already has "
            f"dedup key {alert.dedup_key!r}."
        ) from None


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
    """Triggered → acknowledged. Stops escalation.

    With the service's ack timeout set, the deadline becomes the time it is
    paged again if still not resolved (``retrigger_incident``).
    ``via`` names where the person acted from when it was not triage's own
    pages ("a notification", "Slack"); the timeline says so.

    An escalation racing this waits for the row lock: it either escalated
    first (and the acknowledgement follows it) or finds the incident
    acknowledged with a new deadline, and does nothing.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(incident)
        _check(locked, Status.ACKNOWLEDGED, "acknowledged")
        first_ack = locked.acknowledged_at is None
        locked.status = Status.ACKNOWLEDGED
        locked.acknowledged_at = now
        locked.acknowledged_by = actor_user(actor)
        minutes = locked.service.ack_timeout_minutes
        locked.next_escalation_at = now + timedelta(minutes=minutes) if minutes else None
        locked.nobody_reached_at = None
        locked.save()
        record_event(locked, EventKind.ACKNOWLEDGED, actor=actor, now=now, message=_via(actor, via))
        if first_ack:
            waited = (now - locked.opened_at).total_seconds()
            after_commit(
                counters.observe, "time_to_acknowledge", waited, TIME_TO_ACKNOWLEDGE_BUCKETS
            )
        hooks.lifecycle.acknowledged(locked, now=now)
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
    """Triggered or acknowledged → resolved. Nothing more is due."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(incident)
        _check(locked, Status.RESOLVED, "resolved")
        locked.status = Status.RESOLVED
        locked.resolved_at = now
        locked.resolved_by = actor_user(actor)
        locked.next_escalation_at = None
        locked.save()
        if locked.is_storm:  # a storm resolved by hand takes its alerts with it
            storms.resolve_alerts(locked, None, now=now)
        record_event(
            locked, EventKind.RESOLVED, actor=actor, now=now, message=message or _via(actor, via)
        )
        hooks.lifecycle.resolved(locked, now=now)
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
        hooks.lifecycle.reopened(locked, now=now)
        announce(locked, "reopened")
    return locked


def escalate_incident(
    incident: Incident, *, actor: Actor, now: datetime | None = None, via: str = ""
) -> Incident:
    """Page the next escalation level now.

    An acknowledged incident goes back to triggered: whoever is paged next
    must acknowledge it themselves. Refused for resolved incidents and for
    services without an escalation policy (there is nobody to escalate to).
    Paging picks the level (the ``escalated`` hook) and records it with
    ``advance_escalation`` under this transaction's row lock.
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
        hooks.lifecycle.escalated(locked, now=now, actor=actor, via=via)
    return locked


def retrigger_incident(incident: Incident, *, now: datetime | None = None) -> Incident:
    """Acknowledged → triggered: the acknowledgement timed out and the
    incident is still open, so it is paged from the first level again.

    The paging engine calls this once the locked row's ack-timeout deadline
    has passed, inside its own transaction: the lock is already held, so
    locking again does not wait. Paging level 1 (the ``retriggered`` hook)
    moves the deadline before the lock is released, so a second checker, a
    retried task or a rebuilt index finds nothing due.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(incident)
        if locked.status != Status.ACKNOWLEDGED:
            raise InvalidTransition(
                f"Incident #{locked.pk} is {locked.get_status_display().lower()}; "
                "only an acknowledged incident can be re-triggered."
            )
        locked.status = Status.TRIGGERED
        locked.acknowledged_at = locked.acknowledged_by = None
        locked.escalation_level = locked.escalation_cycle = 0
        locked.save()
        record_event(
            locked,
            EventKind.RETRIGGERED,
            actor=None,
            now=now,
            message="Re-triggered: acknowledged but still not resolved",
        )
        hooks.lifecycle.retriggered(locked, now=now)
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


# --- the escalation position, as the paging engine decides it ---------------
# The engine calls these while it holds the incident's row lock (it locked
# the row, or it runs in a lifecycle hook), having decided from what that
# locked row says: whoever locks the row next sees the result, so two
# checkers, a retried task, a manual escalation and an acknowledgement are
# serialised by PostgreSQL.


@dataclass(frozen=True)
class EscalationMove:
    """A level paged now: ``level`` of the policy (1 is the first) in repeat
    ``cycle``, and when to decide again (None: nothing more is due)."""

    level: int
    cycle: int
    next_at: datetime | None


def advance_escalation(incident: Incident, move: EscalationMove) -> None:
    """Record ``move``. The caller holds the row lock.

    Every move adds one to ``escalation_step``, the token of a move: its pages
    and timeline entries carry it, and a worker acting for an older step finds
    the step moved and does nothing. Paging a level clears "nobody reached".
    """
    incident.escalation_level = move.level
    incident.escalation_cycle = move.cycle
    incident.escalation_step += 1
    incident.next_escalation_at = move.next_at
    incident.nobody_reached_at = None
    incident.save(
        update_fields=[
            "escalation_level",
            "escalation_cycle",
            "escalation_step",
            "next_escalation_at",
            "nobody_reached_at",
            "updated_at",
        ]
    )


def advance_escalations(moves: list[tuple[Incident, EscalationMove]]) -> None:
    """``advance_escalation`` for many incidents (an escalation storm's chunk):
    one UPDATE per distinct move, usually one for the whole chunk. The caller
    holds every row's lock in the same transaction, so the step each row
    reads and adds one to is the one the caller decided from."""
    now = timezone.now()
    groups: dict[tuple[int, int, datetime | None], list[int]] = {}
    for incident, move in moves:
        incident.escalation_level = move.level
        incident.escalation_cycle = move.cycle
        incident.escalation_step += 1
        incident.next_escalation_at = move.next_at
        incident.nobody_reached_at = None
        incident.updated_at = now
        groups.setdefault((move.level, move.cycle, move.next_at), []).append(incident.pk)
    for (level, cycle, next_at), ids in groups.items():
        Incident.objects.filter(pk__in=ids).update(
            escalation_level=level,
            escalation_cycle=cycle,
            escalation_step=F("escalation_step") + 1,
            next_escalation_at=next_at,
            nobody_reached_at=None,
            updated_at=now,
        )


def set_escalation_deadline(incident: Incident, at: datetime | None) -> None:
    """Decide again at ``at`` (a maintenance window's end, or now when the
    window was cut short), or never (None: nobody can be paged). The caller
    holds the row lock."""
    incident.next_escalation_at = at
    incident.save(update_fields=["next_escalation_at", "updated_at"])


def flag_nobody_reached(incident: Incident, *, now: datetime) -> None:
    """The last level was paged and nobody on it could be reached: the
    dashboard puts the incident first in its severity. The caller holds the
    row lock."""
    incident.nobody_reached_at = now
    incident.save(update_fields=["nobody_reached_at", "updated_at"])
