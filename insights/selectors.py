"""On-call health: how many incidents, how fast they were acknowledged and
resolved, what was noisiest, who was paged when, and how often the first
level did not answer — per service or overall, for the last 7, 30 or 90 days.

Everything is read from PostgreSQL (incidents, their timeline, paging's Page
rows) with ORM aggregates: a fixed number of queries whatever the range, each
one pass over the rows in range. Times of day are the server's TIME_ZONE,
given explicitly, so a person's own zone activated for display never changes
what the figures (or the cache entry shared by everyone) say.

What counts:
- an incident is in the range when it was *opened* in it; its time to
  acknowledge is ``acknowledged_at - opened_at`` and to resolve
  ``resolved_at - opened_at`` as they stand now (an incident escalated or
  re-triggered after its acknowledgement counts from its latest one, and one
  resolved without an acknowledgement has no time to acknowledge);
- a page is one person paged at one escalation step (``Page`` rows with the
  same incident, step and person are the contact methods of that one page;
  retries are not pages), counted in the range it was sent in, and split by
  ``settings.BUSINESS_HOURS``: Monday to Friday within them is business
  hours, the rest of a weekday is night, Saturday and Sunday are weekend;
- an incident escalated past level 1 when its timeline has an escalation to
  level 2 or higher (a policy that repeats level 1 does not count).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import (
    BigIntegerField,
    BooleanField,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Max,
    Q,
    QuerySet,
    Value,
)
from django.db.models.functions import (
    Coalesce,
    ExtractIsoWeekDay,
    NullIf,
    TruncDate,
    TruncTime,
)
from django.utils import timezone

from incidents.models import EventKind, Incident, Service, TimelineEvent
from insights.aggregates import PercentileCont
from paging.models import Page

RANGES = (7, 30, 90)
STEPS = 2**20
DEFAULT_DAYS = 30
NOISIEST = 10

TO_ACKNOWLEDGE = ExpressionWrapper(F("acknowledged_at") - F("opened_at"), DurationField())
TO_RESOLVE = ExpressionWrapper(F("resolved_at") - F("opened_at"), DurationField())
# What the noisiest alerts are grouped by: the dedup key, or the title without one.
NOISE_KEY = Coalesce(NullIf("dedup_key", Value("")), "title")
IS_DEDUP_KEY = ExpressionWrapper(~Q(dedup_key=""), BooleanField())


@dataclass(frozen=True)
class Durations:
    count: int
    median: timedelta | None
    p90: timedelta | None


@dataclass(frozen=True)
class Noisy:
    """Incidents opened under one dedup key (or, without one, one title)."""

    key: str
    is_dedup_key: bool
    service: str  # slug
    service_name: str
    incidents: int
    alert_repeats: int
    last_opened_at: datetime


@dataclass(frozen=True)
class PersonPages:
    username: str
    business_hours: int
    nights: int
    weekends: int

    @property
    def total(self) -> int:
        return self.business_hours + self.nights + self.weekends


@dataclass(frozen=True)
class ServiceHealth:
    slug: str
    name: str
    incidents: int
    acknowledge_median: timedelta | None
    resolve_median: timedelta | None
    escalated: int


@dataclass(frozen=True)
class Health:
    days: int
    service: Service | None
    start: datetime  # local midnight, (days - 1) days before today
    end: datetime  # the moment the figures were read
    time_zone: str
    incidents: int
    per_day: list[tuple[date, int]]
    acknowledge: Durations
    resolve: Durations
    escalated: int
    noisiest: list[Noisy]
    pages: list[PersonPages]
    # Per service: only for the overall view (empty when one service is shown).
    services: list[ServiceHealth] = field(default_factory=list)

    @property
    def escalated_share(self) -> float | None:
        return self.escalated / self.incidents if self.incidents else None


def zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def window(days: int, *, now: datetime) -> tuple[datetime, list[date]]:
    """Where the range starts (local midnight) and its calendar days, today last."""
    today = timezone.localtime(now, zone()).date()
    first = today - timedelta(days=days - 1)
    return (
        datetime.combine(first, time(0), tzinfo=zone()),
        [first + timedelta(days=n) for n in range(days)],
    )


def health(days: int, service: Service | None = None, *, now: datetime | None = None) -> Health:
    """The figures for the last ``days`` calendar days up to ``now``; seven
    queries (six for one service)."""
    if days not in RANGES:
        raise ValueError(f"days must be one of {RANGES}, got {days!r}")
    now = now or timezone.now()
    start, calendar = window(days, now=now)
    incidents = Incident.objects.filter(opened_at__gte=start, opened_at__lte=now)
    pages = Page.objects.filter(created_at__gte=start, created_at__lte=now)
    if service is not None:
        incidents = incidents.filter(service=service)
        pages = pages.filter(incident__service=service)
    totals = incidents.aggregate(**_figures(start))
    return Health(
        days=days,
        service=service,
        start=start,
        end=now,
        time_zone=settings.TIME_ZONE,
        incidents=totals["incidents"],
        per_day=_per_day(incidents, calendar),
        acknowledge=Durations(
            totals["acknowledged"], totals["acknowledge_median"], totals["acknowledge_p90"]
        ),
        resolve=Durations(totals["resolved"], totals["resolve_median"], totals["resolve_p90"]),
        escalated=totals["escalated"],
        noisiest=_noisiest(incidents),
        pages=pages_per_person(pages),
        services=[] if service is not None else _per_service(incidents, start),
    )


def escalated_past_first_level(start: datetime) -> QuerySet[TimelineEvent, Any]:
    # An incident escalates after it opened, so its escalations are no older
    # than the range: the bound lets PostgreSQL read them from the partial
    # index timeline_escalated instead of scanning every event.
    return TimelineEvent.objects.filter(
        kind=EventKind.ESCALATED, data__level__gte=2, created_at__gte=start
    ).values("incident_id")


def _figures(start: datetime) -> dict[str, Any]:
    return {
        "incidents": Count("pk"),
        "acknowledged": Count("acknowledged_at"),
        "acknowledge_median": PercentileCont(TO_ACKNOWLEDGE, 0.5),
        "acknowledge_p90": PercentileCont(TO_ACKNOWLEDGE, 0.9),
        "resolved": Count("resolved_at"),
        "resolve_median": PercentileCont(TO_RESOLVE, 0.5),
        "resolve_p90": PercentileCont(TO_RESOLVE, 0.9),
        "escalated": Count("pk", filter=Q(pk__in=escalated_past_first_level(start))),
    }


def _per_day(incidents: QuerySet[Incident], calendar: list[date]) -> list[tuple[date, int]]:
    counts = dict(
        incidents.annotate(day=TruncDate("opened_at", tzinfo=zone()))
        .values("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
        .order_by()
    )
    return [(day, counts.get(day, 0)) for day in calendar]


def _noisiest(incidents: QuerySet[Incident]) -> list[Noisy]:
    key = NOISE_KEY
    is_dedup_key = IS_DEDUP_KEY
    # Grouped on the service's id alone (names are read for the ten rows
    # afterwards): sorting 100,000 rows by wide text keys cost more than all
    # the rest of the query.
    rows = list(
        incidents.values("service_id", key=key, is_dedup_key=is_dedup_key)
        .annotate(incidents=Count("pk"), last_opened_at=Max("opened_at"))
        .order_by("-incidents", "-last_opened_at", "key")[:NOISIEST]
    )
    if not rows:
        return []
    services = Service.objects.in_bulk({row["service_id"] for row in rows})
    # Repeats (alerts that joined an open incident instead of opening one)
    # of the noisiest ones only: each of their incidents' timeline through
    # its index, not a pass over every alert in the range.
    noisy = Q()
    for row in rows:
        same = (
            {"dedup_key": row["key"]}
            if row["is_dedup_key"]
            else {"dedup_key": "", "title": row["key"]}
        )
        noisy |= Q(service_id=row["service_id"], **same)
    repeats = dict.fromkeys(((r["service_id"], r["is_dedup_key"], r["key"]) for r in rows), 0)
    for service_id, dedup_key, title, n in (
        TimelineEvent.objects.filter(kind=EventKind.ALERT, incident__in=incidents.filter(noisy))
        .values_list("incident__service_id", "incident__dedup_key", "incident__title")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        slot = (service_id, bool(dedup_key), dedup_key or title)
        if slot in repeats:
            repeats[slot] += n
    return [
        Noisy(
            key=row["key"],
            is_dedup_key=row["is_dedup_key"],
            service=services[row["service_id"]].slug,
            service_name=services[row["service_id"]].name,
            incidents=row["incidents"],
            alert_repeats=repeats[(row["service_id"], row["is_dedup_key"], row["key"])],
            last_opened_at=row["last_opened_at"],
        )
        for row in rows
    ]


def pages_split(pages: QuerySet[Page]) -> QuerySet[Page]:
    """First attempts to a person, with the weekday and time of day they were
    sent at (in the server's zone), for ``page_counts``."""
    return pages.filter(attempt=1, user__isnull=False).annotate(
        weekday=ExtractIsoWeekDay("created_at", tzinfo=zone()),
        clock=TruncTime("created_at", tzinfo=zone()),
    )


def page_counts() -> dict[str, Count]:
    """Pages in business hours, nights and weekends, over ``pages_split`` rows."""
    opens, closes = settings.BUSINESS_HOURS
    # One page: a person at one step of one incident, whatever the number of
    # their contact methods (a Page row each), as one number: distinct
    # numbers count several times faster than distinct text. Steps stay far
    # below 2**20 (each is one escalation move), ids below 2**43.
    one_page = ExpressionWrapper(F("incident_id") * STEPS + F("step"), BigIntegerField())
    weekend = Q(weekday__gte=6)
    business = Q(weekday__lte=5, clock__gte=opens, clock__lt=closes)
    night = Q(weekday__lte=5) & (Q(clock__lt=opens) | Q(clock__gte=closes))
    return {
        "business_hours": Count(one_page, distinct=True, filter=business),
        "nights": Count(one_page, distinct=True, filter=night),
        "weekends": Count(one_page, distinct=True, filter=weekend),
    }


def by_load(people: list[PersonPages]) -> list[PersonPages]:
    return sorted(people, key=lambda person: (-person.total, person.username))


def pages_per_person(pages: QuerySet[Page]) -> list[PersonPages]:
    rows = (
        pages_split(pages)
        .values("user__username")
        .annotate(**page_counts())
        .order_by("user__username")
    )
    return by_load(
        [
            PersonPages(username, business_hours, nights, weekends)
            for username, business_hours, nights, weekends in rows.values_list(  # type: ignore[misc]  # annotated by page_counts()
                "user__username", "business_hours", "nights", "weekends"
            )
        ]
    )


def _per_service(incidents: QuerySet[Incident], start: datetime) -> list[ServiceHealth]:
    rows = (
        incidents.values("service__slug", "service__name")
        .annotate(
            incidents=Count("pk"),
            acknowledge_median=PercentileCont(TO_ACKNOWLEDGE, 0.5),
            resolve_median=PercentileCont(TO_RESOLVE, 0.5),
            escalated=Count("pk", filter=Q(pk__in=escalated_past_first_level(start))),
        )
        .order_by("-incidents", "service__name")
    )
    return [
        ServiceHealth(
            slug=row["service__slug"],
            name=row["service__name"],
            incidents=row["incidents"],
            acknowledge_median=row["acknowledge_median"],
            resolve_median=row["resolve_median"],
            escalated=row["escalated"],
        )
        for row in rows
    ]
