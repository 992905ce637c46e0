"""The on-call health figures read from the daily roll-ups plus what is
still live: the same ``Health`` as ``insights.selectors.health`` gives on
the same data (tests/test_insights_rollups.py holds them equal), at the
cost of ~90 small rows per service instead of every incident, timeline
event and page of the range.

Live, read from the incidents themselves: those opened today, those still
open, and those resolved after their day's roll-up cutoff (``insights.
rollups`` says why that split counts every incident once). They are few —
today's plus the open ones — and found through indexes: ``opened_at``, the
open incidents' partial indexes and ``incident_resolved_at``.

Medians and 90th percentiles are computed here from the exact, sorted
durations the roll-ups keep, as PostgreSQL's ``percentile_cont`` does
(interpolated between the two nearest values), to the microsecond (the
live path interpolates intervals; the two may differ by rounding, by at
most a microsecond). The noisiest alerts are ranked by one hand-written
query (``_NOISIEST_SQL``, the one in this app): a UNION of the roll-up rows
and the live incidents, grouped and ordered as the live path orders them.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import chain

from django.conf import settings
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from incidents.models import OPEN_STATUSES, EventKind, Incident, Service, Status, TimelineEvent
from insights import rollups
from insights.aggregates import Microseconds
from insights.models import DayHealth, DayPages, RolledDay, unpack
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


@dataclass
class _Tally:
    incidents: int = 0
    escalated: int = 0
    to_acknowledge: list[Sequence[int]] = field(default_factory=list)
    to_resolve: list[Sequence[int]] = field(default_factory=list)

    def add(self, incidents: int, escalated: int, ack: Sequence[int], res: Sequence[int]) -> None:
        self.incidents += incidents
        self.escalated += escalated
        self.to_acknowledge.append(ack)
        self.to_resolve.append(res)


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
    live = _live(start, now, cutoffs, service)
    tallies = _tallies(closed, live, service)
    # Each service's durations sorted once (its median needs them); the
    # overall percentiles are picked from those sorted runs, not merged.
    sorted_ack = {pk: _sorted(tally.to_acknowledge) for pk, tally in tallies.items()}
    sorted_res = {pk: _sorted(tally.to_resolve) for pk, tally in tallies.items()}
    overall = _Tally()
    per_day: Counter[date] = Counter()
    for tally in tallies.values():
        overall.incidents += tally.incidents
        overall.escalated += tally.escalated
    per_day.update(_rolled_per_day(closed, service))
    per_day.update(row.day for row in live)
    return Health(
        days=days,
        service=service,
        start=start,
        end=now,
        time_zone=settings.TIME_ZONE,
        incidents=overall.incidents,
        per_day=[(day, per_day[day]) for day in calendar],
        acknowledge=_durations(list(sorted_ack.values())),
        resolve=_durations(list(sorted_res.values())),
        escalated=overall.escalated,
        noisiest=_noisiest(closed, live, service),
        pages=_pages(closed, now, service),
        services=[] if service is not None else _per_service(tallies, sorted_ack, sorted_res),
    )


def _cutoffs(closed: list[date]) -> dict[date, datetime]:
    return dict(
        RolledDay.objects.filter(day__in=closed, basis=rollups.basis()).values_list("day", "cutoff")
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
    escalations = TimelineEvent.objects.filter(
        incident=OuterRef("pk"), kind=EventKind.ESCALATED, data__level__gte=2
    )
    rows = candidates.annotate(
        day=TruncDate("opened_at", tzinfo=zone()),
        key=NOISE_KEY,
        is_dedup_key=IS_DEDUP_KEY,
        escalated=Exists(escalations),
        to_acknowledge=Microseconds(TO_ACKNOWLEDGE),
        to_resolve=Microseconds(TO_RESOLVE),
    ).values_list(
        "pk", "service_id", "day", "key", "is_dedup_key", "escalated",
        "to_acknowledge", "to_resolve", "status", "resolved_at",
    )  # fmt: skip
    return [
        _Live(*row[:8])
        for row in rows
        # Resolved by its day's cutoff: in the roll-up, not live.
        if row[2] == today
        or row[8] != Status.RESOLVED
        or (row[9] is not None and row[9] > cutoffs[row[2]])
    ]


def _tallies(closed: list[date], live: list[_Live], service: Service | None) -> dict[int, _Tally]:
    rolled = DayHealth.objects.filter(day__in=closed)
    if service is not None:
        rolled = rolled.filter(service=service)
    tallies: dict[int, _Tally] = defaultdict(_Tally)
    for service_id, incidents, escalated, ack, res in rolled.values_list(
        "service_id", "incidents", "escalated", "to_acknowledge", "to_resolve"
    ):
        tallies[service_id].add(incidents, escalated, unpack(ack), unpack(res))
    for row in live:
        tallies[row.service_id].add(
            1,
            int(row.escalated),
            [] if row.to_acknowledge is None else [row.to_acknowledge],
            [] if row.to_resolve is None else [row.to_resolve],
        )
    return tallies


def _rolled_per_day(closed: list[date], service: Service | None) -> dict[date, int]:
    rolled = DayHealth.objects.filter(day__in=closed)
    if service is not None:
        rolled = rolled.filter(service=service)
    return dict(rolled.values("day").annotate(n=Sum("incidents")).values_list("day", "n"))


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


_NOISIEST_SQL = """
SELECT service_id, key, is_dedup_key, SUM(incidents) AS incidents,
       MAX(last_opened_at) AS last_opened_at, SUM(alert_repeats) AS alert_repeats
FROM (
    SELECT service_id, key, is_dedup_key, incidents, last_opened_at, alert_repeats
    FROM insights_daynoise
    WHERE day = ANY(%(days)s) AND (%(service)s::bigint IS NULL OR service_id = %(service)s)
    UNION ALL
    SELECT service_id, COALESCE(NULLIF(dedup_key, ''), title), dedup_key <> '', 1, opened_at, 0
    FROM incidents_incident
    WHERE id = ANY(%(live)s)
) AS noise
GROUP BY service_id, key, is_dedup_key
ORDER BY 4 DESC, 5 DESC, 2
LIMIT %(limit)s
"""


def _noisiest(closed: list[date], live: list[_Live], service: Service | None) -> list[Noisy]:
    with connection.cursor() as cursor:
        cursor.execute(
            _NOISIEST_SQL,
            {
                "days": closed,
                "service": service.pk if service else None,
                "live": [row.pk for row in live],
                "limit": NOISIEST,
            },
        )
        top = cursor.fetchall()
    if not top:
        return []
    groups = {
        (service_id, is_dedup, key): int(repeats)
        for service_id, key, is_dedup, _, _, repeats in top
    }
    # Repeats of the live incidents in the noisiest groups (the roll-ups
    # hold those of the others).
    owner = {
        row.pk: group
        for row in live
        if (group := (row.service_id, row.is_dedup_key, row.key)) in groups
    }
    if owner:
        for incident_id, n in (
            TimelineEvent.objects.filter(kind=EventKind.ALERT, incident_id__in=list(owner))
            .values("incident_id")
            .annotate(n=Count("pk"))
            .values_list("incident_id", "n")
            .order_by()
        ):
            groups[owner[incident_id]] += n
    services = Service.objects.in_bulk({row[0] for row in top})
    return [
        Noisy(
            key=key,
            is_dedup_key=is_dedup,
            service=services[service_id].slug,
            service_name=services[service_id].name,
            incidents=int(incidents),
            alert_repeats=groups[(service_id, is_dedup, key)],
            last_opened_at=last_opened_at,
        )
        for service_id, key, is_dedup, incidents, last_opened_at, _ in top
    ]


def _pages(closed: list[date], now: datetime, service: Service | None) -> list[PersonPages]:
    today_start = datetime.combine(timezone.localtime(now, zone()).date(), time(0), tzinfo=zone())
    rolled = DayPages.objects.filter(day__in=closed)
    today = Page.objects.filter(created_at__gte=today_start, created_at__lte=now)
    if service is not None:
        rolled = rolled.filter(service=service)
        today = today.filter(incident__service=service)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in (
        rolled.values("user__username")
        .annotate(b=Sum("business_hours"), n=Sum("nights"), w=Sum("weekends"))
        .values_list("user__username", "b", "n", "w")
        .order_by()
    ):
        counts[row[0]] = list(row[1:])
    for person in pages_per_person(today):
        tally = counts[person.username]
        tally[0] += person.business_hours
        tally[1] += person.nights
        tally[2] += person.weekends
    return by_load([PersonPages(name, *tally) for name, tally in counts.items()])
