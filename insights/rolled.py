"""The on-call health figures read from the daily roll-ups plus what is
still live: the same ``Health`` as ``insights.selectors.health`` gives on
the same data (tests/test_insights_rollups.py holds them equal), at the
cost of ~90 small rows per service instead of every incident, timeline
event and page of the range.

The closed days' part but the last ``RECENT_DAYS`` (each service's counts
and sorted durations, the incidents per day, each person's pages, every
noisiest-alerts group) is read once per process for the same roll-up rows
and remembered (``_closed_part`` says why it cannot be stale): a day's
roll-up changes only when it is rolled again, while the figures' cache
entry expires every minute. A cold entry then reads the roll-ups' ids, the
last few closed days and the live part. Beat rolls a day again when one of
its incidents is acknowledged, escalated, resolved or reopened after the
day's cutoff (``rollups.dirty_days``): mostly the last few days, which are
not remembered for that reason; an older day rolled again makes the next
computation in each process read the whole part again (about twice the
cost of a computation without anything remembered: every noisiest-alerts
group is read, not only the ten first).

Live, read from the incidents themselves: those opened today, those still
open, and those resolved after their day's roll-up cutoff (``insights.
rollups`` says why that split counts every incident once). They are few —
today's plus the open ones — and found through indexes: ``opened_at``, the
open incidents' partial indexes and ``incident_resolved_at``.

Medians and 90th percentiles are computed here from the exact, sorted
durations the roll-ups keep, as PostgreSQL's ``percentile_cont`` does
(interpolated between the two nearest values), to the microsecond (the
live path interpolates intervals; the two may differ by rounding, by at
most a microsecond). The noisiest alerts are the closed groups with the
live incidents added, ranked in Python by count and latest opening; keys
that tie on both are put in order by PostgreSQL (``_KEY_ORDER_SQL``, the
one hand-written query in this app), whose collation orders the live
path's keys.
"""

from __future__ import annotations

import heapq
import math
import threading
from array import array
from bisect import bisect_right
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import chain

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, Exists, Max, OuterRef, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from incidents.models import OPEN_STATUSES, EventKind, Incident, Service, Status, TimelineEvent
from insights import rollups
from insights.aggregates import Microseconds
from insights.models import DayHealth, DayNoise, DayPages, RolledDay, unpack
from insights.selectors import (
    IS_DEDUP_KEY,
    NOISE_KEY,
    NOISIEST,
    RANGES,
    TO_ACKNOWLEDGE,
    TO_RESOLVE,
    Durations,
    Health,
    Noisy,
    PersonPages,
    ServiceHealth,
    by_load,
    health,
    pages_per_person,
    window,
    zone,
)
from paging.models import Page
from triage import readmodel


@dataclass(frozen=True)
class _Live:
    pk: int
    service_id: int
    day: date
    key: str
    is_dedup_key: bool
    escalated: bool
    to_acknowledge: int | None
    to_resolve: int | None
    opened_at: int  # microseconds since the epoch: compared, not shown


# A noisiest-alerts group: service id, whether the key is a dedup key, the key.
_Group = tuple[int, bool, str]


@dataclass
class _Tally:
    """One service's incidents, escalations and sorted durations."""

    incidents: int = 0
    escalated: int = 0
    to_acknowledge: list[int] = field(default_factory=list)
    to_resolve: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Rolled:
    """What the roll-ups of some closed days say, for one service or all of
    them: each service's counts and durations (sorted runs, packed: one run
    when remembered), the incidents per day, and each person's pages (by
    user id: names are read on every request, so a renamed person shows
    under the new name)."""

    tallies: dict[int, tuple[int, int, list[Sequence[int]], list[Sequence[int]]]]
    per_day: dict[date, int]
    pages: dict[int, tuple[int, int, int]]
    # Every group's incidents, latest opening (microseconds since the epoch)
    # and alert repeats; and the groups at or above the tenth best count and
    # latest opening (ties included: the key orders them, ``_noisiest``).
    noise: dict[_Group, tuple[int, int, int]]
    noisiest: list[_Group]


def percentile(values: Sequence[int], fraction: float) -> timedelta | None:
    """``percentile_cont`` of sorted microseconds."""
    if not values:
        return None
    row = fraction * (len(values) - 1)
    first, second = math.floor(row), math.ceil(row)
    low = values[first]
    return timedelta(microseconds=low + round((values[second] - low) * (row - first)))


def _sorted(parts: Iterable[Sequence[int]]) -> list[int]:
    # Each part is sorted: Timsort merges such runs in about linear time.
    return sorted(chain.from_iterable(parts))


def _kth(runs: Sequence[Sequence[int]], k: int) -> int:
    """The ``k``-th smallest value (from 0) of several sorted runs, without
    merging them: the smallest value with more than ``k`` values at or
    below it, found by bisecting the values' range (each step one
    ``bisect_right`` per run: ~40 steps of ~20 runs)."""
    low = min(run[0] for run in runs if run)
    high = max(run[-1] for run in runs if run)
    while low < high:
        middle = (low + high) // 2
        if sum(bisect_right(run, middle) for run in runs) > k:
            high = middle
        else:
            low = middle + 1
    return low


def merged_percentile(runs: Sequence[Sequence[int]], fraction: float) -> timedelta | None:
    """``percentile`` of the sorted runs merged, from the two values around
    the fraction only."""
    if len(runs) == 1:
        return percentile(runs[0], fraction)
    n = sum(len(run) for run in runs)
    if not n:
        return None
    row = fraction * (n - 1)
    first, second = math.floor(row), math.ceil(row)
    low = _kth(runs, first)
    high = low if second == first else _kth(runs, second)
    return timedelta(microseconds=low + round((high - low) * (row - first)))


def _durations(runs: Sequence[Sequence[int]]) -> Durations:
    return Durations(
        sum(len(run) for run in runs),
        merged_percentile(runs, 0.5),
        merged_percentile(runs, 0.9),
    )


def rolled_health(
    days: int, service: Service | None = None, *, now: datetime | None = None
) -> Health:
    """``selectors.health`` from the roll-ups (written first for any closed
    day of the range without one) and the live incidents."""
    if days not in RANGES:
        raise ValueError(f"days must be one of {RANGES}, got {days!r}")
    now = now or timezone.now()
    start, calendar = window(days, now=now)
    closed = calendar[:-1]
    cutoffs = _cutoffs(closed)
    if len(cutoffs) < len(closed):
        rollups.roll([day for day in closed if day not in cutoffs], now=now)
        cutoffs = _cutoffs(closed)
        if len(cutoffs) < len(closed):  # being rolled again right now
            return health(days, service, now=now)
    # The last few closed days are read afresh: those are the days beat
    # rolls again most (an incident opened yesterday and resolved today
    # makes yesterday's roll-up out of date), and rolling one of them again
    # would make the whole remembered part be read again.
    settled, recent = closed[:-RECENT_DAYS], closed[-RECENT_DAYS:]
    rolled = _combined(
        _closed_part(settled, {day: cutoffs[day] for day in settled}, service),
        _read_closed(recent, service, merged=False),
    )
    live = _live(start, now, {day: cutoff for day, (cutoff, _) in cutoffs.items()}, service)
    tallies = _tallies(rolled, live)
    # Each service's durations sorted (its median needs them); the overall
    # percentiles are picked from those sorted runs, not merged.
    sorted_ack = {pk: tally.to_acknowledge for pk, tally in tallies.items()}
    sorted_res = {pk: tally.to_resolve for pk, tally in tallies.items()}
    per_day: Counter[date] = Counter(rolled.per_day)
    per_day.update(row.day for row in live)
    return Health(
        days=days,
        service=service,
        start=start,
        end=now,
        time_zone=settings.TIME_ZONE,
        incidents=sum(tally.incidents for tally in tallies.values()),
        per_day=[(day, per_day[day]) for day in calendar],
        acknowledge=_durations(list(sorted_ack.values())),
        resolve=_durations(list(sorted_res.values())),
        escalated=sum(tally.escalated for tally in tallies.values()),
        noisiest=_noisiest(rolled, live),
        pages=_pages(rolled, now, service),
        services=[] if service is not None else _per_service(tallies, sorted_ack, sorted_res),
    )


def _cutoffs(closed: list[date]) -> dict[date, tuple[datetime, int]]:
    """Each rolled day's cutoff and the id of its ``RolledDay`` row."""
    return {
        day: (cutoff, pk)
        for day, cutoff, pk in RolledDay.objects.filter(
            day__in=closed, basis=rollups.basis()
        ).values_list("day", "cutoff", "pk")
    }


# The closed part of recent ranges, per process (``_closed_part``): at most
# a range per service and the overall one for each of the three ranges, a
# few MB of packed durations at 100,000 incidents.
_REMEMBERED: OrderedDict[tuple[object, ...], _Rolled] = OrderedDict()
_REMEMBERED_MAX = 3 * 8
# The closed days read afresh on every computation, not remembered.
RECENT_DAYS = 3
_remembered_lock = threading.Lock()


def _closed_part(
    closed: list[date], cutoffs: dict[date, tuple[datetime, int]], service: Service | None
) -> _Rolled:
    """The roll-ups of the closed days, read from PostgreSQL once per
    process for the same roll-up rows.

    Why a remembered part cannot be stale: it is named by the ids of the
    ``RolledDay`` rows it was read under, and a day's roll-up rows never
    change in place. Rolling a day again (``rollups.roll``) deletes its
    ``RolledDay`` row and inserts a new one, with a new id, in the same
    transaction as its new rows; a reader that sees the new rows sees the
    new id, and the name with the old id is never asked for again. (A roll
    that commits between the read of the ids and the read of the rows puts
    the new rows under the old ids' name: a name no later request reads.)
    Deleting a service or a person deletes their roll-up rows without a new
    roll: the name also holds the settings' version (``triage.readmodel``),
    which every change to a service or a person bumps after its commit and
    which is read before the rows. Without Redis, nothing is remembered.
    Threads of one process may each read the same part at once: identical
    read-only queries, one of them kept.
    """
    version = _settings_version()
    if version is None:
        return _read_closed(closed, service, merged=True)
    rolled_ids = tuple(sorted(pk for _, pk in cutoffs.values()))
    name = (service.pk if service else None, version, rolled_ids)
    with _remembered_lock:
        found = _REMEMBERED.get(name)
        if found is not None:
            _REMEMBERED.move_to_end(name)
            return found
    rolled = _read_closed(closed, service, merged=True)
    with _remembered_lock:
        _REMEMBERED[name] = rolled
        while len(_REMEMBERED) > _REMEMBERED_MAX:
            _REMEMBERED.popitem(last=False)
    return rolled


def _combined(settled: _Rolled, recent: _Rolled) -> _Rolled:
    """The remembered part with the recent days' added. Every recent group
    is a candidate for the noisiest (``_noisiest`` says why the settled
    part's own candidates are enough for the rest)."""
    tallies = dict(settled.tallies)
    for pk, (incidents, escalated, ack, res) in recent.tallies.items():
        before = tallies.get(pk, (0, 0, [], []))
        tallies[pk] = (
            before[0] + incidents,
            before[1] + escalated,
            [*before[2], *ack],
            [*before[3], *res],
        )
    pages = dict(settled.pages)
    for user_id, (b, n, w) in recent.pages.items():
        had = pages.get(user_id, (0, 0, 0))
        pages[user_id] = (had[0] + b, had[1] + n, had[2] + w)
    noise = dict(settled.noise)
    for group, (n, last, repeats) in recent.noise.items():
        had_n, had_last, had_repeats = noise.get(group, (0, last, 0))
        noise[group] = (had_n + n, max(had_last, last), had_repeats + repeats)
    return _Rolled(
        tallies=tallies,
        per_day=settled.per_day | recent.per_day,
        pages=pages,
        noise=noise,
        noisiest=[*settled.noisiest, *recent.noise],
    )


def _settings_version() -> bytes | None:
    try:
        return get_redis_connection("default").get(readmodel.SETTINGS_KEY) or b"0"
    except (RedisError, OSError):
        return None


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _microseconds(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def _read_closed(closed: list[date], service: Service | None, *, merged: bool) -> _Rolled:
    """The roll-ups of these days; ``merged``: each service's durations as
    one sorted run (sorted once, to be remembered), else a run per day."""
    health_rows = DayHealth.objects.filter(day__in=closed)
    pages_rows = DayPages.objects.filter(day__in=closed)
    if service is not None:
        health_rows = health_rows.filter(service=service)
        pages_rows = pages_rows.filter(service=service)
    counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    runs: dict[int, tuple[list[Sequence[int]], list[Sequence[int]]]] = defaultdict(lambda: ([], []))
    per_day: Counter[date] = Counter()
    for day, service_id, incidents, escalated, ack, res in health_rows.values_list(
        "day", "service_id", "incidents", "escalated", "to_acknowledge", "to_resolve"
    ):
        per_day[day] += incidents
        counts[service_id][0] += incidents
        counts[service_id][1] += escalated
        runs[service_id][0].append(unpack(ack))
        runs[service_id][1].append(unpack(res))
    pages = {
        user_id: (b, n, w)
        for user_id, b, n, w in pages_rows.values("user_id")
        .annotate(b=Sum("business_hours"), n=Sum("nights"), w=Sum("weekends"))
        .values_list("user_id", "b", "n", "w")
        .order_by()
    }
    noise_rows = DayNoise.objects.filter(day__in=closed)
    if service is not None:
        noise_rows = noise_rows.filter(service=service)
    noise = {
        (service_id, is_dedup_key, key): (incidents, last_opened_at, repeats)
        for service_id, key, is_dedup_key, incidents, last_opened_at, repeats in noise_rows.values(
            "service_id", "key", "is_dedup_key"
        )
        .annotate(
            n=Sum("incidents"),
            last=Microseconds(Max("last_opened_at")),
            repeats=Sum("alert_repeats"),
        )
        .values_list("service_id", "key", "is_dedup_key", "n", "last", "repeats")
        .order_by()
    }
    tenth = min(
        heapq.nlargest(NOISIEST, ((n, last) for n, last, _ in noise.values())), default=None
    )
    return _Rolled(
        noise=noise,
        noisiest=[
            group
            for group, (n, last, _) in noise.items()
            if tenth is not None and (n, last) >= tenth
        ],
        tallies={
            pk: (
                incidents,
                escalated,
                [array("q", _sorted(runs[pk][0]))] if merged else runs[pk][0],
                [array("q", _sorted(runs[pk][1]))] if merged else runs[pk][1],
            )
            for pk, (incidents, escalated) in counts.items()
        },
        per_day=dict(per_day),
        pages=pages,
    )


def _live(
    start: datetime, now: datetime, cutoffs: dict[date, datetime], service: Service | None
) -> list[_Live]:
    today = timezone.localtime(now, zone()).date()
    today_start = datetime.combine(today, time(0), tzinfo=zone())
    candidates = Incident.objects.filter(opened_at__gte=start, opened_at__lte=now).filter(
        Q(opened_at__gte=today_start)
        | Q(status__in=OPEN_STATUSES)
        | Q(status=Status.RESOLVED, resolved_at__gt=min(cutoffs.values(), default=now))
    )
    if service is not None:
        candidates = candidates.filter(service=service)
    # Bounded by the range's start as ``selectors.escalated_past_first_level``
    # is (an incident escalates after it opened): read through the partial
    # index timeline_escalated, not every escalation ever.
    escalations = TimelineEvent.objects.filter(
        incident=OuterRef("pk"), kind=EventKind.ESCALATED, data__level__gte=2, created_at__gte=start
    )
    rows = candidates.annotate(
        day=TruncDate("opened_at", tzinfo=zone()),
        key=NOISE_KEY,
        is_dedup_key=IS_DEDUP_KEY,
        escalated=Exists(escalations),
        to_acknowledge=Microseconds(TO_ACKNOWLEDGE),
        to_resolve=Microseconds(TO_RESOLVE),
        # Numbers, not datetimes: thousands of them are only compared.
        opened=Microseconds("opened_at"),
        resolved=Microseconds("resolved_at"),
    ).values_list(
        "pk", "service_id", "day", "key", "is_dedup_key", "escalated",
        "to_acknowledge", "to_resolve", "opened", "status", "resolved",
    )  # fmt: skip
    limits = {day: _microseconds(cutoff) for day, cutoff in cutoffs.items()}
    return [
        _Live(*row[:9])
        for row in rows
        # Resolved by its day's cutoff: in the roll-up, not live.
        if row[2] == today
        or row[9] != Status.RESOLVED
        or (row[10] is not None and row[10] > limits[row[2]])
    ]


def _tallies(rolled: _Rolled, live: list[_Live]) -> dict[int, _Tally]:
    """Each service's closed part with its live incidents added, durations
    sorted (a long sorted run and a few short ones: Timsort merges them in
    about linear time)."""
    live_ack: dict[int, list[int]] = defaultdict(list)
    live_res: dict[int, list[int]] = defaultdict(list)
    tallies: dict[int, _Tally] = defaultdict(_Tally)
    for row in live:
        tally = tallies[row.service_id]
        tally.incidents += 1
        tally.escalated += int(row.escalated)
        if row.to_acknowledge is not None:
            live_ack[row.service_id].append(row.to_acknowledge)
        if row.to_resolve is not None:
            live_res[row.service_id].append(row.to_resolve)
    for pk, (incidents, escalated, _, _) in rolled.tallies.items():
        tallies[pk].incidents += incidents
        tallies[pk].escalated += escalated
    for pk, tally in tallies.items():
        _, _, ack, res = rolled.tallies.get(pk, (0, 0, [], []))
        tally.to_acknowledge = _sorted([*ack, live_ack[pk]])
        tally.to_resolve = _sorted([*res, live_res[pk]])
    return tallies


def _per_service(
    tallies: dict[int, _Tally], sorted_ack: dict[int, list[int]], sorted_res: dict[int, list[int]]
) -> list[ServiceHealth]:
    # Ordered by name as PostgreSQL orders it (its collation, as the live path).
    services = list(Service.objects.filter(pk__in=list(tallies)).order_by("name"))
    rows = []
    for rank, service in enumerate(services):
        tally = tallies[service.pk]
        ack, res = sorted_ack[service.pk], sorted_res[service.pk]
        rows.append(
            (
                (-tally.incidents, rank),
                ServiceHealth(
                    slug=service.slug,
                    name=service.name,
                    incidents=tally.incidents,
                    acknowledge_median=percentile(ack, 0.5),
                    resolve_median=percentile(res, 0.5),
                    escalated=tally.escalated,
                ),
            )
        )
    return [row for _, row in sorted(rows, key=lambda pair: pair[0])]


# Keys in the order PostgreSQL sorts text (its collation), for ties.
_KEY_ORDER_SQL = "SELECT key FROM unnest(%(keys)s::text[]) AS keys (key) ORDER BY key"


def _noisiest(rolled: _Rolled, live: list[_Live]) -> list[Noisy]:
    """The closed days' groups with the live incidents added, ranked as the
    live path ranks them: by incidents, then latest opening, then key.

    Only the closed groups at or above the closed part's tenth best count
    and latest opening, and the groups of live incidents, can be among the
    noisiest: adding live incidents only raises a group's count and latest
    opening, so the ten closed groups above a group without live incidents
    stay above it.
    """
    added: dict[_Group, tuple[int, int]] = {}
    for row in live:
        group = (row.service_id, row.is_dedup_key, row.key)
        n, last = added.get(group, (0, row.opened_at))
        added[group] = (n + 1, max(last, row.opened_at))
    totals: dict[_Group, tuple[int, int, int]] = {}
    for group in chain(rolled.noisiest, added):
        # A group the closed days do not have is a live incident's.
        n, last, closed_repeats = rolled.noise.get(group) or (0, added[group][1], 0)
        more, latest = added.get(group, (0, last))
        totals[group] = (n + more, max(last, latest), closed_repeats)
    if not totals:
        return []
    # Groups below the tenth best count and latest opening cannot be among
    # the noisiest; the rest are ordered by key as PostgreSQL orders text.
    tenth = min(heapq.nlargest(NOISIEST, ((n, last) for n, last, _ in totals.values())))
    near = [group for group, (n, last, _) in totals.items() if (n, last) >= tenth]
    with connection.cursor() as cursor:
        cursor.execute(_KEY_ORDER_SQL, {"keys": sorted({key for _, _, key in near})})
        rank = {key: position for position, (key,) in enumerate(cursor.fetchall())}
    near.sort(key=lambda group: rank[group[2]])
    near.sort(key=lambda group: totals[group][:2], reverse=True)
    top = near[:NOISIEST]
    repeats_of = {group: totals[group][2] for group in top}
    # Repeats of the live incidents in the noisiest groups (the roll-ups
    # hold those of the others).
    owner = {
        row.pk: group
        for row in live
        if (group := (row.service_id, row.is_dedup_key, row.key)) in repeats_of
    }
    if owner:
        for incident_id, n in (
            TimelineEvent.objects.filter(kind=EventKind.ALERT, incident_id__in=list(owner))
            .values("incident_id")
            .annotate(n=Count("pk"))
            .values_list("incident_id", "n")
            .order_by()
        ):
            repeats_of[owner[incident_id]] += n
    services = Service.objects.in_bulk({service_id for service_id, _, _ in top})
    return [
        Noisy(
            key=key,
            is_dedup_key=is_dedup,
            service=services[service_id].slug,
            service_name=services[service_id].name,
            incidents=totals[(service_id, is_dedup, key)][0],
            alert_repeats=repeats_of[(service_id, is_dedup, key)],
            last_opened_at=EPOCH + timedelta(microseconds=totals[(service_id, is_dedup, key)][1]),
        )
        for service_id, is_dedup, key in top
    ]


def _pages(rolled: _Rolled, now: datetime, service: Service | None) -> list[PersonPages]:
    today_start = datetime.combine(timezone.localtime(now, zone()).date(), time(0), tzinfo=zone())
    today = Page.objects.filter(created_at__gte=today_start, created_at__lte=now)
    if service is not None:
        today = today.filter(incident__service=service)
    names = dict(
        get_user_model().objects.filter(pk__in=list(rolled.pages)).values_list("pk", "username")
    )
    # A person deleted since is not counted (nor by the live path).
    counts = {names[pk]: list(tally) for pk, tally in rolled.pages.items() if pk in names}
    for person in pages_per_person(today):
        tally = counts.setdefault(person.username, [0, 0, 0])
        tally[0] += person.business_hours
        tally[1] += person.nights
        tally[2] += person.weekends
    return by_load([PersonPages(name, *tally) for name, tally in counts.items()])
