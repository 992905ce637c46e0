"""Storm protection: when monitoring opens more than a service's threshold of
incidents within its window, further new alerts join one "Alert storm on
<service>" incident instead of opening their own.

The storm incident pages once, like any new incident, through the service's
policy. Every alert that joins it is a ``StormAlert`` row (by dedup key: what
it said first, how often it fired, first and last seen); a resolve for the key
resolves that row, and the storm incident resolves once none fires. The storm
*ends* — new alerts open their own incidents again — once no new alert joined
it for the service's quiet period (and the rate is below the threshold).

Which alerts: those monitoring sends (``MANAGED_SOURCES``). People opening
incidents by hand, problem reports and heartbeats are never folded into a
storm, and a responder splitting an alert out opens its incident directly.

Concurrency, and why the threshold cannot be overshot: every decision to open
a new monitored incident, to open a storm, or to join a storm that is not
storming any more (quiet, but the rate is over the threshold again) is taken
holding the service's row lock (``lock_service``, ``SELECT … FOR NO KEY
UPDATE``, held until the transaction commits). The count of recent incidents
and the look-up of the open storm run after the lock is granted; under READ
COMMITTED each statement sees everything the previous holder committed, so the
20th and 21st alert of a window are counted one after the other, never both
against 19. The NO KEY lock does not conflict with the KEY SHARE lock an
INSERT of an incident takes on its service, so inserting incidents elsewhere
never waits for it.

Joining a storm that is storming needs no count: the storm exists, and a
join opens no incident. So those triggers (nearly all of a storm: its new
alerts and their repeats) take ``join_storming``'s way, which shares the
storm's row (FOR KEY SHARE) instead of queueing on the service's lock; the
lock-holding paths above, resolves and splits lock the storm's row FOR UPDATE
and so wait for joiners in flight, and joiners wait for them
(``incidents.hotpath`` says why no alert is lost or homed twice).

Lock order, which makes the paths deadlock-free: service row → open incident
rows (sorted by id) → storm incident row → storm alert rows. A resolve or a
split starts at the storm incident row and never asks for the service's. A
joiner (``join_storming``) starts at the storm's row and takes one storm alert
row after it; when it finds the key has an incident of its own it does not go
on to the service's lock but rolls back (``IncidentOpenedMeanwhile``).

This module writes storm rows only; ``incidents.services`` calls it from the
new-incident path and owns resolving and splitting.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, F, Max, Min, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from incidents import hooks, hotpath
from incidents.models import (
    OPEN_STATUSES,
    EventKind,
    Incident,
    Service,
    Severity,
    Source,
    StormAlert,
    StormAlertStatus,
)
from incidents.signals import announce
from incidents.timeline import BULK_BATCH, after_commit, record_event
from triage import counters, readmodel

MANAGED_SOURCES = frozenset({Source.ALERTMANAGER, Source.GRAFANA, Source.EVENTS_V2, Source.EMAIL})
# A storm's dashboard row shows its count of alerts: each new alert retires
# the cached dashboard at most this often, so the list stays cached while a
# storm pours in (triage.readmodel).
DASHBOARD_REFRESH_SECONDS = 5


@dataclass(frozen=True)
class Limits:
    threshold: int  # 0: storm protection off
    window: timedelta
    quiet: timedelta


def limits(service: Service) -> Limits:
    """The service's storm settings, the STORM_* settings where it sets none."""

    def pick(value: int | None, default: int) -> int:
        return default if value is None else value

    return Limits(
        threshold=pick(service.storm_threshold, settings.STORM_THRESHOLD),
        window=timedelta(seconds=pick(service.storm_window_seconds, settings.STORM_WINDOW_SECONDS)),
        quiet=timedelta(seconds=pick(service.storm_quiet_seconds, settings.STORM_QUIET_SECONDS)),
    )


@dataclass(frozen=True)
class Alerted:
    """One new alert as the storm keeps it."""

    dedup_key: str
    title: str
    severity: str
    details: str
    source: str


# When this process last saw each service storm (service id → monotonic
# time until which its new alerts try the lock-free join first). A hint
# only: it picks which of two correct ways is tried first, so a stale or
# missing entry costs one statement, never a wrong home; plain dict reads
# and writes, atomic under the GIL, so threads need no lock.
_STORMED_UNTIL: dict[int, float] = {}


def stormed_lately(service: Service) -> bool:
    """Whether this process saw the service's storm take an alert within its
    quiet period: its next new alert probably joins the storm too."""
    return _STORMED_UNTIL.get(service.pk, 0.0) > time.monotonic()


def _stormed(service: Service) -> None:
    _STORMED_UNTIL[service.pk] = time.monotonic() + limits(service).quiet.total_seconds()


def lock_service(service: Service) -> None:
    """Hold the service's row lock until the transaction ends (see the module's
    docstring for why every storm decision is taken under it)."""
    Service.objects.select_for_update(no_key=True).filter(pk=service.pk).values_list("pk").get()


def try_lock_service(service: Service) -> bool:
    """``lock_service`` without waiting: True when the lock is now held,
    False (nothing locked) while another transaction holds it."""
    locked = (
        Service.objects.select_for_update(no_key=True, skip_locked=True)
        .filter(pk=service.pk)
        .values_list("pk")
    )
    return locked.first() is not None


def open_storm_locked(service: Service) -> Incident | None:
    """The service's open storm incident, its row locked until the
    transaction ends."""
    storm = (
        Incident.objects.select_for_update()
        .filter(service=service, is_storm=True, status__in=OPEN_STATUSES)
        .first()
    )
    if storm is not None:
        storm.service = service
    return storm


def _storm_and_recent(
    service: Service, rules: Limits, now: datetime
) -> tuple[Incident | None, int]:
    """The service's open storm, its row locked, and how many incidents of
    their own the service opened within the window: one statement while no
    storm is open (nearly always), the storm's lock after it when one is.

    The caller holds the service's lock, under which alone storms are opened
    and monitored incidents counted, so neither can appear between the two
    statements; a storm resolved in between (a resolve does not take the
    service's lock) is not found by the second, as if it had been resolved
    before the first.
    """
    open_storm = Q(is_storm=True, status__in=OPEN_STATUSES)
    recent = Q(is_storm=False, opened_at__gt=now - rules.window)
    found = (
        Incident.objects.filter(open_storm | recent, service=service)
        .order_by()
        .aggregate(storm=Max("pk", filter=open_storm), recent=Count("pk", filter=recent))
    )
    storm = open_storm_locked(service) if found["storm"] is not None else None
    return storm, found["recent"]


def _storming(storm: Incident, keys: Sequence[str], quiet: timedelta, now: datetime) -> bool:
    """Whether new alerts join ``storm``: one of ``keys`` fires in it already
    (it must not open a second home), or a new alert joined it within the
    quiet period."""
    if StormAlert.objects.filter(
        storm=storm, dedup_key__in=list(keys), status=StormAlertStatus.FIRING
    ).exists():
        return True
    last = StormAlert.objects.filter(storm=storm).aggregate(last=Max("first_seen_at"))["last"]
    return last is not None and last > now - quiet


@dataclass(frozen=True)
class Room:
    """How many new alerts may still open their own incident; the storm the
    others join, and whether it was opened just now (to be paged once its
    first alerts are in)."""

    allowed: int
    storm: Incident | None = None
    new_storm: bool = False


def room(service: Service, keys: Sequence[str], *, source: str, now: datetime) -> Room:
    """How many of ``keys`` (new alerts, none with an open incident) may still
    open their own incident, in order, and the storm the others join (opened
    here when needed). The caller holds the service's lock (``lock_service``).

    With a storm open and storming, none may: every key joins it.
    """
    rules = limits(service)
    if rules.threshold == 0:
        storm, recent = open_storm_locked(service), 0
    else:
        storm, recent = _storm_and_recent(service, rules, now)
    if storm is not None and _storming(storm, keys, rules.quiet, now):
        _stormed(service)
        return Room(0, storm)
    if rules.threshold == 0:
        return Room(len(keys))
    allowed = max(0, rules.threshold - recent)
    if allowed >= len(keys):
        return Room(len(keys))
    _stormed(service)
    if storm is not None:
        return Room(allowed, storm)
    return Room(allowed, _open_storm(service, recent, rules, source, now), new_storm=True)


def _open_storm(
    service: Service, recent: int, rules: Limits, source: str, now: datetime
) -> Incident:
    """The "Alert storm on <service>" incident, paged like any new one."""
    window, quiet = int(rules.window.total_seconds()), int(rules.quiet.total_seconds())
    storm = Incident.objects.create(
        service=service,
        title=f"Alert storm on {service.name}",
        details=(
            f"{service.name} opened {recent} incidents within {window} s (threshold "
            f"{rules.threshold}). Further new alerts join this incident until {quiet} s pass "
            "without a new one; each is listed on it."
        ),
        severity=Severity.INFO,
        source=source,
        is_storm=True,
        opened_at=now,
    )
    record_event(
        storm,
        EventKind.OPENED,
        actor=None,
        now=now,
        message=f"Alert storm: {recent} incidents on {service.name} within {window} s; "
        "further alerts join this incident.",
        data={"storm": True, "recent": recent, "threshold": rules.threshold},
    )
    after_commit(counters.count, "incidents_opened", ("storm",))
    return storm


def page_new_storm(storm: Incident, *, now: datetime) -> None:
    """Page for a storm incident opened in this transaction (once its first
    alert is in, so the page names its severity)."""
    hooks.lifecycle.opened(storm, now=now)
    announce(storm, "opened")


def join(storm: Incident, alerts: Sequence[Alerted], *, now: datetime) -> None:
    """Add ``alerts`` (distinct dedup keys) to ``storm``, whose row the caller
    holds locked: a key already listed counts one more trigger and fires
    again; a new key gets its row. One UPDATE and one INSERT at most.

    Why the count cannot lose an increment: ``repeat`` adds to a firing row
    with an UPDATE that locks it, and this UPDATE adds with ``count + 1`` on
    the locked row too, never a value read earlier. No other path inserts a
    storm's rows without this storm's lock, so the INSERT cannot collide.
    """
    keys = [alert.dedup_key for alert in alerts]
    known = set(
        StormAlert.objects.filter(storm=storm, dedup_key__in=keys).values_list(
            "dedup_key", flat=True
        )
    )
    if known:
        StormAlert.objects.filter(storm=storm, dedup_key__in=known).update(
            count=F("count") + 1,
            last_seen_at=now,
            status=StormAlertStatus.FIRING,
            resolved_at=None,
            split_into=None,
        )
    new = [alert for alert in alerts if alert.dedup_key not in known]
    StormAlert.objects.bulk_create(
        [
            StormAlert(
                storm=storm,
                dedup_key=alert.dedup_key,
                name=alert.title,
                severity=alert.severity,
                source=alert.source,
                details=alert.details,
                first_seen_at=now,
                last_seen_at=now,
            )
            for alert in new
        ],
        batch_size=BULK_BATCH,
    )
    _raise_severity(storm, [alert.severity for alert in alerts])
    if new:
        after_commit(readmodel.bump_throttled, f"storm:{storm.pk}", DASHBOARD_REFRESH_SECONDS)


def _raise_severity(storm: Incident, severities: Sequence[str]) -> None:
    """The storm is as severe as its most severe alert."""
    worst = min(severities, key=Severity.rank)
    if Severity.rank(worst) < Severity.rank(storm.severity):
        storm.severity = worst
        storm.save(update_fields=["severity", "updated_at"])
        readmodel.bump_after_commit()


class IncidentOpenedMeanwhile(Exception):
    """An incident of its own for the key opened while ``join_storming`` waited
    for the storm's row: the caller rolls back (releasing the storm's row, to
    keep the lock order) and starts again, finding that incident."""


def join_storming(service: Service, alert: Alerted, *, now: datetime) -> Incident | None:
    """A trigger that joins the service's open storm without the service's
    lock: a repeat of an alert firing in it, or a new alert (or one firing
    again) while the storm is storming. Returns the storm, or None when the
    trigger must be decided under the service's lock (no open storm, or the
    storm is quiet and the key does not fire in it); raises
    ``IncidentOpenedMeanwhile`` when the key turned out to have an open
    incident of its own (the caller calls it only after looking for one, so
    that one opened meanwhile). Two statements (``incidents.hotpath``, which
    says why no race can break the threshold or lose an alert); the storm's row
    stays share-locked until the transaction ends, so a resolve or split of
    the storm waits for this alert instead of missing it.

    This is ``room``'s first case (open and storming: every key joins) taken
    without the service's lock. Only the move *into* a storm, or out of a
    quiet one, needs the exact count of recent incidents: that stays with
    ``lock_service`` + ``room``.
    """
    locked = hotpath.lock_storming(
        service_id=service.pk, dedup_key=alert.dedup_key, since=now - limits(service).quiet
    )
    if locked is None:
        return None
    storm, listed = locked
    joined = hotpath.join_storm(
        storm_id=storm.pk,
        service_id=service.pk,
        dedup_key=alert.dedup_key,
        name=alert.title,
        severity=alert.severity,
        source=alert.source,
        details=alert.details,
        now=now,
    )
    if not joined:
        raise IncidentOpenedMeanwhile(f"{alert.dedup_key!r} has an incident of its own now")
    storm.service = service
    _stormed(service)
    _raise_severity_shared(storm, alert.severity)
    if not listed:
        after_commit(readmodel.bump_throttled, f"storm:{storm.pk}", DASHBOARD_REFRESH_SECONDS)
    return storm


def _raise_severity_shared(storm: Incident, severity: str) -> None:
    """``_raise_severity`` for joiners that share the storm's row: a
    conditional UPDATE, re-checked by PostgreSQL on the row it waited for, so
    a concurrent joiner's more severe value is never overwritten by a lesser
    one."""
    if Severity.rank(severity) >= Severity.rank(storm.severity):
        return
    milder = [value for value in Severity.values if Severity.rank(value) > Severity.rank(severity)]
    if Incident.objects.filter(pk=storm.pk, severity__in=milder).update(
        severity=severity, updated_at=timezone.now()
    ):
        storm.severity = severity
        readmodel.bump_after_commit()


def resolve_alerts(storm: Incident, keys: Sequence[str] | None, *, now: datetime) -> int:
    """Mark the storm's firing alerts with these keys (None: all) resolved;
    returns how many. The caller holds the storm's row lock."""
    firing = StormAlert.objects.filter(storm=storm, status=StormAlertStatus.FIRING)
    if keys is not None:
        firing = firing.filter(dedup_key__in=list(keys))
    return firing.update(status=StormAlertStatus.RESOLVED, resolved_at=now)


def still_firing(storm: Incident) -> bool:
    return StormAlert.objects.filter(storm=storm, status=StormAlertStatus.FIRING).exists()


# --- reads --------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """What the incident page, the API and MCP say about a storm."""

    alerts: int  # distinct alerts (dedup keys)
    triggers: int  # every trigger, repeats included
    firing: int
    names: list[str]  # distinct alert names, at most NAMES_SHOWN
    distinct_names: int
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    ends_at: datetime | None  # when new alerts stop joining, if nothing new comes

    def as_json(self) -> dict[str, Any]:
        def time(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "alerts": self.alerts,
            "triggers": self.triggers,
            "firing": self.firing,
            "distinct_names": self.distinct_names,
            "names": self.names,
            "first_seen_at": time(self.first_seen_at),
            "last_seen_at": time(self.last_seen_at),
            "ends_at": time(self.ends_at),
        }


NAMES_SHOWN = 50


def summary(storm: Incident) -> Summary:
    """Counts, names and times of a storm's alerts: two queries."""
    rows = StormAlert.objects.filter(storm=storm)
    totals = rows.aggregate(
        alerts=Count("pk"),
        triggers=Coalesce(Sum("count"), 0),
        firing=Count("pk", filter=Q(status=StormAlertStatus.FIRING)),
        distinct=Count("name", distinct=True),
        first=Min("first_seen_at"),
        last=Max("last_seen_at"),
        newest=Max("first_seen_at"),
    )
    names = list(rows.order_by("name").values_list("name", flat=True).distinct()[:NAMES_SHOWN])
    newest = totals["newest"]
    ends_at = newest + limits(storm.service).quiet if newest and storm.is_open else None
    return Summary(
        alerts=totals["alerts"],
        triggers=totals["triggers"],
        firing=totals["firing"],
        names=names,
        distinct_names=totals["distinct"],
        first_seen_at=totals["first"],
        last_seen_at=totals["last"],
        ends_at=ends_at,
    )


ALERTS_SHOWN = 500


def alerts(storm: Incident) -> list[StormAlert]:
    """The storm's alerts as its page lists them: firing first, then by first seen."""
    return list(
        StormAlert.objects.filter(storm=storm)
        .select_related("split_into")
        # "firing" sorts before "resolved" and "split".
        .order_by("status", "first_seen_at", "pk")[:ALERTS_SHOWN]
    )
