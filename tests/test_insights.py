"""On-call health (/insights): the figures on a small known dataset, the
cache, and the page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client
from redis import Redis
from redis.exceptions import ConnectionError as RedisDown
from time_machine import TimeMachineFixture

from incidents.models import EventKind, Incident, Service, Status, TimelineEvent
from insights import cache as insights_cache
from insights.aggregates import PercentileCont
from insights.selectors import health
from insights.templatetags.insights import duration, percent
from paging.models import Page
from tests.factories import ServiceFactory, UserFactory

pytestmark = pytest.mark.django_db

# A Sunday evening; the 7-day range starts on Monday 2026-11-23 at midnight.
NOW = datetime(2026, 11, 29, 20, 0, tzinfo=UTC)
MONDAY = datetime(2026, 11, 23, tzinfo=UTC)
MIN = timedelta(minutes=1)


def incident(
    service: Service,
    opened: datetime,
    *,
    ack: timedelta | None = None,
    resolve: timedelta | None = None,
    dedup_key: str = "",
    title: str = "Disk full",
) -> Incident:
    status = Status.RESOLVED if resolve else Status.ACKNOWLEDGED if ack else Status.TRIGGERED
    return Incident.objects.create(
        service=service,
        title=title,
        severity="error",
        status=status,
        dedup_key=dedup_key,
        opened_at=opened,
        acknowledged_at=opened + ack if ack else None,
        resolved_at=opened + resolve if resolve else None,
    )


def page(
    incident: Incident,
    user: User | None,
    at: datetime,
    *,
    step: int = 1,
    attempt: int = 1,
    channel: str = "ntfy",
) -> Page:
    sent = Page.objects.create(
        incident=incident,
        user=user,
        channel=channel,
        level=1,
        step=step,
        attempt=attempt,
        due_at=at,
    )
    # created_at is set on insert (auto_now_add): move it to when it was sent.
    Page.objects.filter(pk=sent.pk).update(created_at=at)
    return sent


def event(incident: Incident, kind: str, at: datetime, **data: Any) -> TimelineEvent:
    return TimelineEvent.objects.create(incident=incident, kind=kind, created_at=at, data=data)


@pytest.fixture
def db_only(web: Service) -> Service:
    return ServiceFactory(name="Database", slug="db")


# --- the figures ------------------------------------------------------------


def test_medians_and_ninetieth_percentiles_are_exact(web: Service, db_only: Service) -> None:
    opened = MONDAY + timedelta(hours=10)
    for ack, resolve in [(1, 10), (2, 20), (3, 30), (4, 40), (10, None)]:
        incident(web, opened, ack=ack * MIN, resolve=resolve * MIN if resolve else None)
    incident(web, opened, resolve=50 * MIN)  # resolved without an acknowledgement
    incident(web, opened)  # still triggered
    incident(web, MONDAY - timedelta(seconds=1), ack=99 * MIN)  # before the range
    incident(db_only, opened, ack=60 * MIN, resolve=120 * MIN)

    figures = health(7, web, now=NOW)

    assert figures.incidents == 7
    # Acknowledged: 1, 2, 3, 4, 10 minutes. p90 lies 0.6 of the way from 4 to 10.
    assert figures.acknowledge.count == 5
    assert figures.acknowledge.median == 3 * MIN
    assert figures.acknowledge.p90 == timedelta(minutes=7, seconds=36)
    # Resolved: 10, 20, 30, 40, 50 minutes. p90 lies 0.6 of the way from 40 to 50.
    assert figures.resolve.count == 5
    assert figures.resolve.median == 30 * MIN
    assert figures.resolve.p90 == 46 * MIN

    overall = health(7, now=NOW)
    assert overall.incidents == 8
    assert overall.acknowledge.median == timedelta(minutes=3, seconds=30)
    assert [
        (row.slug, row.incidents, row.acknowledge_median, row.resolve_median)
        for row in overall.services
    ] == [
        ("web", 7, 3 * MIN, 30 * MIN),
        ("db", 1, 60 * MIN, 120 * MIN),
    ]


def test_incidents_per_day_are_the_server_time_zone_s_calendar_days(
    web: Service, settings: Any
) -> None:
    settings.TIME_ZONE = "Europe/Berlin"  # UTC+1 in November
    berlin = ZoneInfo("Europe/Berlin")
    first = datetime(2026, 11, 23, tzinfo=berlin)  # Monday midnight in Berlin
    incident(web, first - timedelta(seconds=1))  # Sunday before: out of the range
    incident(web, first)
    incident(web, datetime(2026, 11, 24, 23, 30, tzinfo=UTC))  # Wednesday 00:30 in Berlin
    incident(web, datetime(2026, 11, 25, 22, 59, tzinfo=UTC))  # Wednesday 23:59 in Berlin
    incident(web, NOW)

    figures = health(7, now=NOW)

    assert figures.start == first
    assert [(f"{day:%a}", n) for day, n in figures.per_day] == [
        ("Mon", 1),
        ("Tue", 0),
        ("Wed", 2),
        ("Thu", 0),
        ("Fri", 0),
        ("Sat", 0),
        ("Sun", 1),
    ]
    assert figures.incidents == 4
    assert len(health(30, now=NOW).per_day) == 30
    assert health(90, now=NOW).per_day[-1] == (NOW.date(), 1)


def test_pages_are_split_into_business_hours_nights_and_weekends_at_the_boundaries(
    web: Service,
) -> None:
    ana, bob = UserFactory(username="ana"), UserFactory(username="bob")
    broken = incident(web, MONDAY)
    friday = MONDAY + timedelta(days=4)
    moments = {
        MONDAY + timedelta(hours=8, minutes=59, seconds=59): "night",
        MONDAY + timedelta(hours=9): "business",
        friday + timedelta(hours=17, minutes=59, seconds=59): "business",
        friday + timedelta(hours=18): "night",
        friday + timedelta(days=1): "weekend",  # Saturday 00:00
        friday + timedelta(days=2, hours=19, minutes=59): "weekend",  # Sunday 19:59
    }
    for step, at in enumerate(moments, 1):
        page(broken, ana, at, step=step)
    # Two contact methods at one step are one page; a retry is not a page.
    page(broken, bob, MONDAY + timedelta(hours=12), step=1, channel="ntfy")
    page(broken, bob, MONDAY + timedelta(hours=12), step=1, channel="mailto")
    page(broken, bob, MONDAY + timedelta(hours=12, minutes=1), step=1, attempt=2)
    page(broken, None, MONDAY + timedelta(hours=12))  # a deleted user's page
    page(broken, bob, MONDAY - timedelta(seconds=1), step=99)  # before the range

    people = {person.username: person for person in health(7, now=NOW).pages}

    assert list(people) == ["ana", "bob"]  # most pages first
    ana_pages = people["ana"]
    assert (ana_pages.business_hours, ana_pages.nights, ana_pages.weekends) == (2, 2, 2)
    assert ana_pages.total == 6
    bob_pages = people["bob"]
    assert (bob_pages.business_hours, bob_pages.nights, bob_pages.weekends) == (1, 0, 0)


def test_business_hours_come_from_the_setting_in_the_server_time_zone(
    web: Service, settings: Any
) -> None:
    settings.TIME_ZONE = "America/New_York"  # UTC-5 in November
    settings.BUSINESS_HOURS = (time(7, 30), time(16, 0))
    ana = UserFactory(username="ana")
    broken = incident(web, MONDAY + timedelta(days=1))
    tuesday = datetime(2026, 11, 24, tzinfo=ZoneInfo("America/New_York"))
    page(broken, ana, tuesday + timedelta(hours=7, minutes=30), step=1)  # 12:30 UTC
    page(broken, ana, tuesday + timedelta(hours=16), step=2)  # 21:00 UTC
    page(broken, ana, tuesday + timedelta(hours=7, minutes=29), step=3)
    # Saturday 00:30 UTC is still Friday evening in New York: a night.
    page(broken, ana, datetime(2026, 11, 28, 0, 30, tzinfo=UTC), step=4)

    [ana_pages] = health(7, now=NOW).pages

    assert (ana_pages.business_hours, ana_pages.nights, ana_pages.weekends) == (1, 3, 0)


def test_escalations_past_level_one_count_incidents_once(web: Service, db_only: Service) -> None:
    at = MONDAY + timedelta(hours=3)
    twice = incident(web, at)
    event(twice, EventKind.ESCALATED, at + 5 * MIN, level=2, cycle=0)
    event(twice, EventKind.ESCALATED, at + 10 * MIN, level=3, cycle=0)
    repeated = incident(web, at)  # a one-level policy paging level 1 again
    event(repeated, EventKind.ESCALATED, at + 5 * MIN, level=1, cycle=1)
    incident(web, at)
    elsewhere = incident(db_only, at)
    event(elsewhere, EventKind.ESCALATED, at + 5 * MIN, level=2, cycle=0)

    overall = health(7, now=NOW)
    assert overall.escalated == 2
    assert overall.escalated_share == pytest.approx(2 / 4)
    assert {row.slug: row.escalated for row in overall.services} == {"web": 1, "db": 1}
    assert health(7, web, now=NOW).escalated == 1


def test_the_noisiest_alerts_are_those_that_opened_most_incidents(
    web: Service, db_only: Service
) -> None:
    at = MONDAY + timedelta(hours=1)
    for hour in range(3):
        noisy = incident(web, at + hour * timedelta(hours=1), resolve=MIN, dedup_key="disk-full")
        event(noisy, EventKind.ALERT, at + hour * timedelta(hours=1) + MIN)
    for hour in range(2):
        incident(web, at + hour * timedelta(hours=1), resolve=MIN, title="Checkout slow")
    incident(db_only, at, resolve=MIN, dedup_key="disk-full")
    replica = incident(db_only, at, dedup_key="replica-lag")
    for _ in range(5):
        event(replica, EventKind.ALERT, at + MIN)
    # A keyless incident titled like a key is another alert.
    incident(web, at, resolve=MIN, title="disk-full")

    noisiest = [
        (row.key, row.is_dedup_key, row.service, row.incidents, row.alert_repeats)
        for row in health(7, now=NOW).noisiest
    ]

    assert noisiest[:2] == [
        ("disk-full", True, "web", 3, 3),
        ("Checkout slow", False, "web", 2, 0),
    ]
    assert sorted(noisiest[2:]) == [
        ("disk-full", False, "web", 1, 0),
        ("disk-full", True, "db", 1, 0),
        ("replica-lag", True, "db", 1, 5),
    ]
    only_db = [(row.key, row.incidents) for row in health(7, db_only, now=NOW).noisiest]
    assert sorted(only_db) == [("disk-full", 1), ("replica-lag", 1)]


def test_one_service_shows_only_its_own_incidents_and_pages(web: Service, db_only: Service) -> None:
    ana, bob = UserFactory(username="ana"), UserFactory(username="bob")
    at = MONDAY + timedelta(hours=10)
    page(incident(web, at, ack=MIN), ana, at)
    page(incident(db_only, at, ack=5 * MIN), bob, at)

    figures = health(7, db_only, now=NOW)

    assert figures.incidents == 1
    assert figures.acknowledge.median == 5 * MIN
    assert [person.username for person in figures.pages] == ["bob"]
    assert figures.services == []  # the per-service table is for the overall view


def test_a_range_without_incidents_has_no_figures_but_zeros(web: Service) -> None:
    incident(web, MONDAY - timedelta(days=30))

    figures = health(7, now=NOW)

    assert figures.incidents == 0
    assert figures.per_day == [(day, 0) for day, _ in figures.per_day]
    assert figures.acknowledge.median is figures.resolve.p90 is None
    assert figures.escalated_share is None
    assert figures.noisiest == figures.pages == figures.services == []


def test_the_figures_cost_a_fixed_number_of_queries(
    web: Service, db_only: Service, django_assert_num_queries: Any
) -> None:
    for n in range(20):
        broken = incident(web if n % 2 else db_only, MONDAY + n * MIN, dedup_key=f"k{n}")
        page(broken, UserFactory(), MONDAY + n * MIN)
    # Totals, days, noisiest with their services and repeats, pages, per service.
    with django_assert_num_queries(7):
        health(30, now=NOW)
    with django_assert_num_queries(6):
        health(30, web, now=NOW)


def test_only_the_offered_ranges_and_real_percentiles_are_accepted() -> None:
    with pytest.raises(ValueError, match="days must be one of"):
        health(14)
    with pytest.raises(ValueError, match="from 0 to 1"):
        PercentileCont("opened_at", 1.5)


# --- the cache ----------------------------------------------------------------


def test_figures_are_cached_for_a_minute_then_read_again(
    web: Service, redis: Redis, django_assert_num_queries: Any
) -> None:
    incident(web, datetime.now(UTC) - timedelta(hours=1))
    first = insights_cache.cached_health(30)
    incident(web, datetime.now(UTC) - timedelta(minutes=30))

    with django_assert_num_queries(0):
        again = insights_cache.cached_health(30)
    assert again.incidents == first.incidents == 1  # a minute-old view
    assert 0 < cache.ttl(insights_cache.key(30, None)) <= insights_cache.TTL
    # Each range and service has its own entry.
    assert insights_cache.cached_health(30, web).incidents == 2
    assert insights_cache.cached_health(7).incidents == 2

    cache.delete(insights_cache.key(30, None))  # what the minute passing does
    assert insights_cache.cached_health(30).incidents == 2


def test_without_redis_the_figures_come_straight_from_postgresql(
    web: Service, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }
    incident(web, datetime.now(UTC) - timedelta(hours=1))

    figures = insights_cache.cached_health(30)

    assert figures.incidents == 1
    assert insights_cache.cached_charts(figures).per_day.startswith("<svg")
    assert "insights cache unavailable" in caplog.text


def test_a_cached_entry_that_cannot_be_stored_is_still_answered(
    web: Service, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RedisDown("Redis went away")

    monkeypatch.setattr(cache, "set", refuse)
    assert insights_cache.cached_health(7).incidents == 0


# --- the page ----------------------------------------------------------------


@pytest.fixture
def busy_week(web: Service, db_only: Service) -> None:
    ana = UserFactory(username="ana")
    at = MONDAY + timedelta(hours=10)
    for n in range(4):
        broken = incident(
            web,
            at + n * timedelta(days=1),
            ack=n * MIN + MIN,
            resolve=30 * MIN,
            dedup_key="disk-full",
        )
        page(broken, ana, at + n * timedelta(days=1))
    incident(db_only, at, ack=2 * MIN)


def test_the_page_shows_the_figures_with_two_charts_and_no_script(
    alice_client: Client, busy_week: None, redis: Redis, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(NOW, tick=False)

    response = alice_client.get("/insights", {"days": "7"})

    assert response.status_code == 200
    page_html = response.content.decode()
    main = page_html[page_html.index("<main") :]
    assert main.count('class="pygal-chart"') == 2
    assert "<script" not in main  # pygal's tooltip script is taken out (CSP)
    assert re.search(r'<span class="n">5</span> <span class="label">incidents', main)
    assert "<code>disk-full</code></td><td>Web shop</td><td>4</td>" in main
    assert "<tr><td>ana</td><td>4</td><td>0</td><td>0</td><td>4</td></tr>" in main
    assert "Monday to Friday from 09:00 to 18:00 (UTC)" in main
    # Medians: acknowledged after 1, 2, 2, 3, 4 minutes.
    assert '<span class="n">2m 00s</span> <span class="label">median time to acknowledge' in main
    assert '<a href="?days=7&amp;service=db">Database</a>' in main
    assert '<option value="7" selected>Last 7 days</option>' in main


def test_one_service_s_page_has_no_per_service_table(
    alice_client: Client, busy_week: None, redis: Redis, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(NOW, tick=False)

    response = alice_client.get("/insights", {"days": "90", "service": "db"})

    assert response.status_code == 200
    main = response.content.decode()
    assert "<h1>On-call health: Database</h1>" in main
    assert 'id="services"' not in main
    assert '<option value="db" selected>Database</option>' in main
    assert "Nobody was paged" in main  # the chart says so instead of drawing nothing


def test_an_empty_range_says_so(alice_client: Client, redis: Redis) -> None:
    response = alice_client.get("/insights")

    assert response.status_code == 200
    main = response.content.decode()
    assert "No incidents in this range." in main
    assert "No incidents</text>" in main  # the per-day chart's own message
    assert '<option value="30" selected>Last 30 days</option>' in main


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"days": "14"}, "Range: Select a valid choice."),
        ({"days": "soon"}, "Range: Select a valid choice."),
        ({"service": "nope"}, "Service: Select a valid choice."),
    ],
)
def test_a_range_or_service_not_offered_is_a_clear_400(
    alice_client: Client, web: Service, redis: Redis, query: dict[str, str], message: str
) -> None:
    response = alice_client.get("/insights", query)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert 'class="pygal-chart"' not in response.content.decode()


def test_durations_read_as_people_say_them() -> None:
    assert [
        duration(value)
        for value in (
            None,
            timedelta(seconds=45),
            timedelta(minutes=12, seconds=5),
            timedelta(hours=3, minutes=20),
            timedelta(days=2, hours=4, minutes=59),
        )
    ] == ["—", "45s", "12m 05s", "3h 20m", "2d 4h"]
    assert percent(None) == "—"
    assert percent(0.25) == "25%"
