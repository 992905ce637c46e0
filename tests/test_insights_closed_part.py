"""On-call health: the closed days' part of a range is read from the roll-ups
once per process and remembered; the figures stay those of the live path
when a day is rolled again, a person is renamed or deleted, or keys tie.
And the page's service picker, read from the cached service choices."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from redis import Redis

from incidents.models import Incident, Service, Status
from insights import rolled, rollups
from insights.rolled import rolled_health
from insights.selectors import health
from paging.models import Page
from tests.factories import ServiceFactory, UserFactory

pytestmark = pytest.mark.django_db

# A Sunday evening, as in tests/test_insights.py.
NOW = datetime(2026, 11, 29, 20, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
ROLL_UPS = ("insights_dayhealth", "insights_daynoise", "insights_daypages")


def _incident(
    service: Service,
    opened: datetime,
    *,
    resolve: timedelta | None = 30 * MINUTE,
    dedup_key: str = "",
    title: str = "Disk full",
) -> Incident:
    return Incident.objects.create(
        service=service,
        title=title,
        severity="error",
        status=Status.RESOLVED if resolve else Status.ACKNOWLEDGED,
        dedup_key=dedup_key,
        opened_at=opened,
        acknowledged_at=opened + MINUTE,
        resolved_at=opened + resolve if resolve else None,
    )


def _page(incident: Incident, user: User, at: datetime) -> None:
    sent = Page.objects.create(
        incident=incident, user=user, channel="ntfy", level=1, step=1, due_at=at
    )
    Page.objects.filter(pk=sent.pk).update(created_at=at)


# The 7-day range at NOW: Monday to Saturday are closed; Monday to Wednesday
# are remembered, the last three closed days (rolled.RECENT_DAYS) read afresh.
SETTLED = ("2026-11-23", "2026-11-24", "2026-11-25")


def _reads_settled_roll_ups(queries: CaptureQueriesContext) -> bool:
    return any(
        table in query["sql"] and day in query["sql"]
        for query in queries
        for table in ROLL_UPS
        for day in SETTLED
    )


@pytest.fixture(autouse=True)
def _forgotten() -> Iterator[None]:
    """Nothing remembered from another test's roll-ups."""
    rolled._REMEMBERED.clear()
    yield
    rolled._REMEMBERED.clear()


@pytest.fixture
def week(web: Service) -> User:
    """Resolved incidents on closed days of the week, paged to ana, and one
    open since Thursday."""
    ana = UserFactory(username="ana")
    for n in range(1, 5):
        opened = NOW - timedelta(days=n, hours=2)
        _page(_incident(web, opened, dedup_key="disk-full"), ana, opened)
    _incident(web, NOW - timedelta(days=3), resolve=None, dedup_key="cpu-hot")
    return ana


def test_the_closed_days_are_read_once_and_the_figures_stay_the_live_path_s(
    week: User, redis: Redis
) -> None:
    with CaptureQueriesContext(connection) as queries:
        first = rolled_health(7, now=NOW)
    assert _reads_settled_roll_ups(queries)
    with CaptureQueriesContext(connection) as queries:
        again = rolled_health(7, now=NOW + MINUTE)
    assert not _reads_settled_roll_ups(queries)
    assert again == health(7, now=NOW + MINUTE)
    assert again.incidents == first.incidents == 5


def test_a_day_rolled_again_is_read_again(web: Service, week: User, redis: Redis) -> None:
    rolled_health(7, now=NOW)
    # An incident of Wednesday resolved again later than its day's cutoff,
    # and the day rolled again (what beat's refresh does with a changed day).
    wednesday = Incident.objects.filter(opened_at__date=(NOW - timedelta(days=4)).date()).get()
    Incident.objects.filter(pk=wednesday.pk).update(resolved_at=wednesday.opened_at + 90 * MINUTE)
    rollups.roll([wednesday.opened_at.date()], now=NOW + 20 * MINUTE)

    with CaptureQueriesContext(connection) as queries:
        figures = rolled_health(7, now=NOW + 30 * MINUTE)
    assert _reads_settled_roll_ups(queries)
    assert figures == health(7, now=NOW + 30 * MINUTE)


def test_a_renamed_or_deleted_person_shows_at_once(week: User, redis: Redis) -> None:
    assert [person.username for person in rolled_health(7, now=NOW).pages] == ["ana"]

    week.username = "anna"
    week.save()
    assert [person.username for person in rolled_health(7, now=NOW).pages] == ["anna"]

    week.delete()  # the roll-ups' pages of hers go with her
    figures = rolled_health(7, now=NOW)
    assert figures.pages == []
    assert figures == health(7, now=NOW)


def test_each_service_has_its_own_part_and_few_are_kept(
    web: Service, week: User, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rolled, "_REMEMBERED_MAX", 2)
    db = ServiceFactory(name="Database", slug="db")
    _incident(db, NOW - timedelta(days=1))
    for days in (7, 30):
        for service in (None, web, db):
            assert rolled_health(days, service, now=NOW) == health(days, service, now=NOW)
    assert len(rolled._REMEMBERED) == 2


def test_noisiest_alerts_that_tie_are_ordered_by_key_as_postgresql_orders_them(
    web: Service, redis: Redis
) -> None:
    """Twelve keys, each one incident opened at the same moment: half on a
    closed day (rolled up), half still open (live). Only the key can order
    them, and only ten are shown."""
    opened = NOW - timedelta(days=1)
    keys = [
        "b-disk",
        "B-disk",
        "a-disk",
        "A-disk",
        "_disk",
        "disk",
        "Ä-disk",
        "z",
        "Z",
        "0",
        "é",
        "e",
    ]
    for n, key in enumerate(keys):
        _incident(web, opened, resolve=None if n % 2 else 30 * MINUTE, dedup_key=key)

    figures = rolled_health(7, now=NOW)

    assert figures.noisiest == health(7, now=NOW).noisiest
    assert len(figures.noisiest) == 10
    assert {row.incidents for row in figures.noisiest} == {1}


def test_noisiest_alerts_add_live_incidents_to_their_closed_group(
    web: Service, week: User, redis: Redis
) -> None:
    _incident(web, NOW - timedelta(hours=1), resolve=MINUTE, dedup_key="disk-full")  # today

    figures = rolled_health(7, now=NOW)

    assert figures == health(7, now=NOW)
    top = figures.noisiest[0]
    assert (top.key, top.incidents) == ("disk-full", 5)
    assert top.last_opened_at == NOW - timedelta(hours=1)


# --- the page's service picker ---------------------------------------------------


def test_the_service_picker_reads_no_service_row_once_cached(
    alice_client: Client, web: Service, redis: Redis, django_assert_max_num_queries: Any
) -> None:
    alice_client.get("/insights", {"service": "web"})

    with django_assert_max_num_queries(2):  # session, user
        page = alice_client.get("/insights", {"service": "web"})

    assert '<option value="web" selected>Web shop</option>' in page.content.decode()


def test_a_service_deleted_after_it_was_offered_is_a_clear_400(
    alice_client: Client, web: Service, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The choices a page read a moment before the service was deleted.
    monkeypatch.setattr("insights.forms.services", lambda: [("gone", "Gone")])

    response = alice_client.get("/insights", {"service": "gone"})

    assert response.status_code == 400
    assert "Service: Select a valid choice. That service no longer exists." in (
        response.content.decode()
    )
