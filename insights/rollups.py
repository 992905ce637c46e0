"""Writes the daily roll-ups (``insights.models``): on demand for a closed
day a range needs and nobody rolled yet, and from Celery beat
(``insights.refresh``), which also rolls again the days whose incidents
changed and keeps the overall figures' cache entries warm.

Which incidents a day's roll-up holds, and why none is counted twice or
missed: the roll-up of day D holds the incidents opened on D whose status
was *resolved* with ``resolved_at <= cutoff`` when it was written, where
``cutoff`` is ``SETTLE`` before that moment; ``insights.rolled`` reads live
exactly the others (opened today, still open, or resolved after their day's
cutoff). ``SETTLE`` covers transactions in flight while rolling: one that
resolves an incident commits well within it (requests and tasks are killed
long before: ``CELERY_TASK_TIME_LIMIT``, gunicorn's timeout), so every
incident resolved by the cutoff is visible to the rolling transaction.
What the cutoff cannot see — an incident reopened, or resolved with a
``resolved_at`` older than its commit (an alert source's end time) — bumps
``updated_at``; the next refresh finds those days (``dirty_days``) and
rolls them again, so they are right again within a refresh interval.

Two rollers of the same day (two requests, or a request and beat) cannot
both write it: each transaction first deletes and inserts the day's
``RolledDay`` row (unique ``day``); the second blocks on the first's row
and then fails on the unique index, and its figures are those the first
wrote (``roll`` returns False). Nothing else writes these tables.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.contrib.postgres.aggregates import ArrayAgg
from django.db import IntegrityError, transaction
from django.db.models import (
    Count,
    F,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from incidents.models import EventKind, Incident, Status, TimelineEvent
from insights.aggregates import Microseconds
from insights.models import DayHealth, DayNoise, DayPages, RolledDay, pack
from insights.selectors import (
    IS_DEDUP_KEY,
    NOISE_KEY,
    RANGES,
    TO_ACKNOWLEDGE,
    TO_RESOLVE,
    escalated_past_first_level,
    page_counts,
    pages_split,
    window,
    zone,
)
from paging.models import Page

log = logging.getLogger(__name__)

SETTLE = timedelta(minutes=10)
KEEP_DAYS = max(RANGES)


def basis() -> str:
    """The settings a roll-up depends on: days and business hours."""
    opens, closes = settings.BUSINESS_HOURS
    return f"{settings.TIME_ZONE} {opens:%H:%M}-{closes:%H:%M}"


def _bounds(days: Sequence[date]) -> tuple[datetime, datetime]:
    return (
        datetime.combine(min(days), time(0), tzinfo=zone()),
        datetime.combine(max(days) + timedelta(days=1), time(0), tzinfo=zone()),
    )


def missing_days(days: Sequence[date]) -> list[date]:
    """The days without a roll-up under today's settings."""
    rolled = set(
        RolledDay.objects.filter(day__in=days, basis=basis()).values_list("day", flat=True)
    )
    return [day for day in days if day not in rolled]


def roll(days: Sequence[date], *, now: datetime | None = None) -> bool:
    """Write (or write again) the roll-ups of these closed days, in one
    transaction; False when a concurrent roller wrote them first."""
    now = now or timezone.now()
    today = timezone.localtime(now, zone()).date()
    if any(day >= today for day in days):
        raise ValueError("only closed days (before today) are rolled up")
    if not days:
        return True
    cutoff = now - SETTLE
    try:
        with transaction.atomic():
            RolledDay.objects.filter(day__in=days).delete()
            RolledDay.objects.bulk_create(
                RolledDay(day=day, basis=basis(), cutoff=cutoff, rolled_at=now) for day in days
            )
            for model in (DayHealth, DayNoise, DayPages):
                model.objects.filter(day__in=days).delete()
            resolved = _resolved(days, cutoff)
            DayHealth.objects.bulk_create(_health_rows(resolved, days))
            DayNoise.objects.bulk_create(_noise_rows(resolved))
            DayPages.objects.bulk_create(_pages_rows(days))
    except IntegrityError:
        log.info("insights roll-up written concurrently", extra={"days": len(days)})
        return False
    return True


def _resolved(days: Sequence[date], cutoff: datetime) -> QuerySet[Any]:
    start, end = _bounds(days)
    return (
        Incident.objects.filter(
            opened_at__gte=start,
            opened_at__lt=end,
            status=Status.RESOLVED,
            resolved_at__lte=cutoff,
        )
        .annotate(day=TruncDate("opened_at", tzinfo=zone()))
        .filter(day__in=days)
    )


def _health_rows(resolved: QuerySet[Incident], days: Sequence[date]) -> list[DayHealth]:
    start, _ = _bounds(days)
    to_acknowledge = Microseconds(TO_ACKNOWLEDGE)
    to_resolve = Microseconds(TO_RESOLVE)
    rows = (
        resolved.values("day", "service_id")  # type: ignore[misc]  # annotated by _resolved
        .annotate(
            incidents=Count("pk"),
            escalated=Count("pk", filter=Q(pk__in=escalated_past_first_level(start))),
            to_acknowledge=ArrayAgg(
                to_acknowledge,
                filter=Q(acknowledged_at__isnull=False),
                order_by=to_acknowledge,
                default=Value([]),
            ),
            to_resolve=ArrayAgg(to_resolve, order_by=to_resolve, default=Value([])),
        )
        .order_by()
    )
    packed = ("to_acknowledge", "to_resolve")
    return [DayHealth(**row | {name: pack(row[name]) for name in packed}) for row in rows]


def _noise_rows(resolved: QuerySet[Incident]) -> list[DayNoise]:
    repeats = (
        TimelineEvent.objects.filter(incident=OuterRef("pk"), kind=EventKind.ALERT)
        .order_by()
        .values("incident")
        .annotate(n=Count("pk"))
        .values("n")
    )
    rows = (
        resolved.annotate(repeats=Coalesce(Subquery(repeats, output_field=IntegerField()), 0))
        .values("day", "service_id", key=NOISE_KEY, is_dedup_key=IS_DEDUP_KEY)
        .annotate(
            incidents=Count("pk"),
            alert_repeats=Sum("repeats"),
            last_opened_at=Max("opened_at"),
        )
        .order_by()
    )
    return [DayNoise(**row) for row in rows]


def _pages_rows(days: Sequence[date]) -> list[DayPages]:
    start, end = _bounds(days)
    pages = Page.objects.filter(created_at__gte=start, created_at__lt=end)
    rows = (
        pages_split(pages)
        .annotate(day=TruncDate("created_at", tzinfo=zone()))
        .filter(day__in=days)
        .values("day", "user_id", service_id=F("incident__service_id"))
        .annotate(**page_counts())
        .order_by()
    )
    return [DayPages(**row) for row in rows]


def dirty_days(*, now: datetime) -> list[date]:
    """Rolled days with an incident changed since their cutoff (reopened,
    or resolved with an earlier ``resolved_at``): to be rolled again."""
    cutoffs = dict(RolledDay.objects.values_list("day", "cutoff"))
    if not cutoffs:
        return []
    start, end = _bounds(list(cutoffs))
    changed = dict(
        Incident.objects.filter(
            opened_at__gte=start, opened_at__lt=end, updated_at__gt=min(cutoffs.values())
        )
        .annotate(day=TruncDate("opened_at", tzinfo=zone()))
        .values("day")
        .annotate(latest=Max("updated_at"))
        .values_list("day", "latest")
        .order_by()
    )
    return sorted(day for day, cutoff in cutoffs.items() if changed.get(day, cutoff) > cutoff)


def refresh(*, now: datetime | None = None) -> dict[str, Any]:
    """Roll the closed days of the longest range that lack a roll-up or
    changed, forget those out of every range, then compute the overall
    figures of each range into the cache so nobody waits on a cold entry."""
    from insights import cache  # the cache module reads through this one

    now = now or timezone.now()
    _, calendar = window(KEEP_DAYS, now=now)
    closed = calendar[:-1]
    again = sorted(set(missing_days(closed)) | set(dirty_days(now=now)))
    roll(again, now=now)
    forgotten, _ = RolledDay.objects.filter(day__lt=closed[0]).delete()
    for model in (DayHealth, DayNoise, DayPages):
        model.objects.filter(day__lt=closed[0]).delete()
    for days in RANGES:
        cache.refresh(days)
    return {"rolled": len(again), "forgotten": forgotten}
