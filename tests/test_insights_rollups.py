"""On-call health from daily roll-ups: the same figures as the live path on
the same data, whatever happened to the incidents after their day was
rolled up; the beat task that rolls days and warms the cache; the page's
cached HTML."""

from __future__ import annotations

import random
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from redis import Redis
from time_machine import TimeMachineFixture

from incidents import services as incident_services
from incidents.models import EventKind, Incident, Service, Status, TimelineEvent
from insights import cache as insights_cache
from insights import charts, rollups
from insights.models import DayHealth, DayNoise, DayPages, RolledDay
from insights.rolled import percentile, rolled_health
from insights.selectors import RANGES, health
from insights.tasks import refresh as refresh_task
from paging.models import Page
from tests.factories import ServiceFactory, UserFactory
from tests.processes import wait_for
from triage.celery import app as celery_app

pytestmark = pytest.mark.django_db

# A Sunday evening, as in tests/test_insights.py.
NOW = datetime(2026, 11, 29, 20, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def _incident(
    service: Service,
    opened: datetime,
    *,
    ack: timedelta | None,
    resolve: timedelta | None,
    dedup_key: str,
    title: str,
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


def _page(incident: Incident, user: User, at: datetime, *, step: int) -> None:
    for channel in ("ntfy", "email"):  # two contact methods: one page
        sent = Page.objects.create(
            incident=incident, user=user, channel=channel, level=step, step=step, due_at=at
        )
        Page.objects.filter(pk=sent.pk).update(created_at=at)


@pytest.fixture
def history(web: Service, time_machine: TimeMachineFixture) -> list[Service]:
    """100 days of incidents on three services, with every kind of thing the
    figures count; open ones among them; some opened today. Written an hour
    before NOW (their updated_at)."""
    time_machine.move_to(NOW - timedelta(hours=1), tick=False)
    rng = random.Random(17)  # noqa: S311  # test data, not secrets
    services = [web, ServiceFactory(name="Database", slug="db"), ServiceFactory(name="api")]
    people = [UserFactory(username=name) for name in ("ana", "bo", "cy")]
    for n in range(240):
        opened = NOW - timedelta(hours=10 * n + rng.randrange(8), seconds=rng.randrange(3600))
        roll = rng.random()
        ack = timedelta(seconds=rng.randrange(1, 3000)) if roll < 0.9 else None
        resolve = timedelta(seconds=rng.randrange(3000, 90000)) if roll > 0.1 else None
        if resolve is not None and opened + resolve > NOW:
            resolve = None
        keyed = rng.random() < 0.7
        dedup_key = f"disk-{rng.randrange(6)}" if keyed else ""
        if keyed and resolve is None:
            dedup_key = f"open-{n}"  # one open incident per key and service
        broken = _incident(
            services[n % 3],
            opened,
            ack=ack,
            resolve=resolve,
            dedup_key=dedup_key,
            title=f"Alert {rng.randrange(4)} firing",
        )
        _page(broken, people[n % 3], opened, step=1)
        if rng.random() < 0.3:
            later = opened + timedelta(minutes=5)
            TimelineEvent.objects.create(
                incident=broken, kind=EventKind.ESCALATED, created_at=later, data={"level": 2}
            )
            _page(broken, people[(n + 1) % 3], later, step=2)
        for _ in range(rng.randrange(3)):
            TimelineEvent.objects.create(
                incident=broken, kind=EventKind.ALERT, created_at=opened + timedelta(minutes=1)
            )
    return services


def assert_same(days: int, service: Service | None = None, *, now: datetime = NOW) -> None:
    live, rolled = health(days, service, now=now), rolled_health(days, service, now=now)
    assert rolled == live
    assert rolled.incidents > 0


def test_the_roll_up_path_gives_the_live_path_s_figures(history: list[Service]) -> None:
    for days in RANGES:
        assert_same(days)
        for service in history:
            assert_same(days, service)
    # Every closed day of the longest range was rolled up (on demand).
    assert RolledDay.objects.count() == 89
    assert DayHealth.objects.exists()
    assert DayNoise.objects.exists()
    assert DayPages.objects.exists()


def test_figures_stay_equal_when_old_incidents_are_resolved_reopened_or_join_alerts(
    history: list[Service], alice: User, time_machine: TimeMachineFixture
) -> None:
    rolled_health(90, now=NOW)  # every closed day rolled up
    later = NOW + timedelta(minutes=30)
    time_machine.move_to(later, tick=False)
    still_open = Incident.objects.exclude(status=Status.RESOLVED).order_by("opened_at")
    # Resolved after its day's roll-up: read live until the day is rolled again.
    oldest = still_open.first()
    assert oldest is not None
    assert oldest.opened_at < NOW - timedelta(days=5)
    incident_services.resolve_incident(oldest, actor=alice, now=later)
    # An alert repeat of an open incident of an earlier day.
    TimelineEvent.objects.create(incident=still_open.last(), kind=EventKind.ALERT, created_at=later)
    assert_same(90, now=later)
    assert_same(30, now=later)

    # Reopened: counted in its day's roll-up until beat rolls the day again.
    resolved = Incident.objects.filter(
        status=Status.RESOLVED, resolved_at__lt=NOW - timedelta(days=3)
    ).first()
    assert resolved is not None
    incident_services.reopen_incident(resolved, actor=alice, now=later)
    assert resolved.opened_at.date() in rollups.dirty_days(now=later)
    rollups.refresh(now=later)
    assert_same(90, now=later)
    # Rolled again while the change is younger than SETTLE (it may have
    # been in flight), then no more.
    settled = later + rollups.SETTLE + timedelta(minutes=1)
    assert rollups.dirty_days(now=settled) == [resolved.opened_at.date()]
    time_machine.move_to(settled, tick=False)
    rollups.refresh(now=settled)
    assert rollups.dirty_days(now=settled) == []
    assert_same(90, now=settled)


def test_a_day_rolled_under_another_time_zone_is_rolled_again(
    history: list[Service], settings: Any
) -> None:
    rolled_health(30, now=NOW)
    settings.TIME_ZONE = "America/New_York"

    assert_same(30)
    assert set(RolledDay.objects.values_list("basis", flat=True)) >= {
        "America/New_York 09:00-18:00"
    }


def test_only_closed_days_are_rolled_up(web: Service) -> None:
    with pytest.raises(ValueError, match="only closed days"):
        rollups.roll([NOW.date()], now=NOW)
    assert rollups.roll([], now=NOW)


def test_rolling_a_day_again_replaces_its_rows(history: list[Service]) -> None:
    day = (NOW - timedelta(days=2)).date()
    assert rollups.roll([day], now=NOW)
    first = list(DayNoise.objects.filter(day=day).values_list("key", "incidents"))
    assert rollups.roll([day], now=NOW + timedelta(minutes=1))

    assert sorted(DayNoise.objects.filter(day=day).values_list("key", "incidents")) == sorted(first)
    assert RolledDay.objects.get(day=day).cutoff == NOW + timedelta(minutes=1) - rollups.SETTLE


def test_percentiles_interpolate_as_postgresql_does() -> None:
    assert percentile([], 0.5) is None
    assert percentile([60_000_000], 0.9) == timedelta(minutes=1)
    minutes = [m * 60_000_000 for m in (1, 2, 3, 4, 10)]
    assert percentile(minutes, 0.5) == timedelta(minutes=3)
    assert percentile(minutes, 0.9) == timedelta(minutes=7, seconds=36)


# --- beat -----------------------------------------------------------------------


def test_beat_rolls_up_forgets_old_days_and_warms_every_range(
    history: list[Service], redis: Redis, time_machine: TimeMachineFixture, settings: Any
) -> None:
    time_machine.move_to(NOW, tick=False)
    RolledDay.objects.create(day=date(2026, 1, 1), basis="x", cutoff=NOW, rolled_at=NOW)

    assert refresh_task.apply().get() == {"rolled": 89, "forgotten": 1}

    assert RolledDay.objects.count() == 89
    for days in RANGES:
        warm = cache.get(insights_cache.key(days, None))
        assert warm == health(days, now=NOW)
    assert refresh_task.apply().get() == {"rolled": 0, "forgotten": 0}
    entry = settings.CELERY_BEAT_SCHEDULE["insights-refresh"]
    assert entry["task"] == "insights.refresh"
    assert entry["schedule"] == insights_cache.REFRESH_SECONDS < insights_cache.TTL
    assert "insights.refresh" in celery_app.tasks


# --- the page's cached HTML -----------------------------------------------------


def test_beat_leaves_the_page_warm_for_the_server_s_time_zone(
    alice_client: Client,
    history: list[Service],
    redis: Redis,
    time_machine: TimeMachineFixture,
) -> None:
    time_machine.move_to(NOW, tick=False)
    refresh_task.apply().get()
    for days in RANGES:
        figures = cache.get(insights_cache.key(days, None))
        html = cache.get(insights_cache.html_key(figures))  # the server's zone: active here
        assert html.startswith("<section")
        assert f'<span class="n">{figures.incidents}</span>' in html

    with CaptureQueriesContext(connection) as queries:
        page = alice_client.get("/insights", {"days": "90"})
    assert cache.get(insights_cache.html_key(figures)).encode() in page.content
    read = " ".join(query["sql"] for query in queries)
    assert "insights_" not in read
    assert "incidents_incident" not in read


def test_the_cached_page_is_its_figures_html_read_once(
    alice_client: Client,
    history: list[Service],
    redis: Redis,
    time_machine: TimeMachineFixture,
    django_assert_max_num_queries: Any,
) -> None:
    time_machine.move_to(NOW, tick=False)
    first = alice_client.get("/insights", {"days": "90"})
    figures = insights_cache.cached_health(90)
    assert cache.get(insights_cache.html_key(figures)).startswith("<section")

    with django_assert_max_num_queries(3):  # session, user, services for the picker
        again = alice_client.get("/insights", {"days": "90"})

    main = first.content[first.content.index(b"<main") :]
    assert again.content[again.content.index(b"<main") :] == main
    assert f'<span class="n">{figures.incidents}</span>'.encode() in main


def _waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database() AND pid <> pg_backend_pid()"
        )
        row = cursor.fetchone()
    return bool(row and row[0])


@pytest.mark.django_db(transaction=True)
def test_two_rollers_of_one_day_write_it_once(web: Service) -> None:
    day = (NOW - timedelta(days=1)).date()
    _incident(web, NOW - timedelta(days=1), ack=None, resolve=MINUTE, dedup_key="", title="x")
    outcome: list[bool] = []

    def second() -> None:
        try:
            outcome.append(rollups.roll([day], now=NOW))
        finally:
            connection.close()

    with transaction.atomic():
        assert rollups.roll([day], now=NOW)  # the first roller, not committed yet
        other = threading.Thread(target=second)
        other.start()
        wait_for(_waiting_on_a_lock, 30, "the second roller waiting for the first")
    other.join()

    assert outcome == [False]  # it gave up: the first one's rows stand
    assert RolledDay.objects.filter(day=day).count() == 1
    assert DayHealth.objects.get(day=day).incidents == 1
    assert DayNoise.objects.filter(day=day).count() == 1


def test_charts_are_drawn_again_only_when_their_numbers_change(
    web: Service, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = NOW - timedelta(days=2)
    _incident(web, opened, ack=MINUTE, resolve=MINUTE, dedup_key="", title="x")
    drawn: list[Any] = []
    draw = charts.render
    monkeypatch.setattr(charts, "render", lambda figures: drawn.append(figures) or draw(figures))

    insights_cache.cached_charts(rolled_health(7, now=NOW))
    insights_cache.cached_charts(rolled_health(7, now=NOW + MINUTE))  # same numbers
    assert len(drawn) == 1

    _incident(web, NOW, ack=None, resolve=None, dedup_key="", title="y")
    changed = rolled_health(7, now=NOW + 2 * MINUTE)
    assert insights_cache.cached_charts(changed).per_day.startswith("<svg")
    assert len(drawn) == 2
