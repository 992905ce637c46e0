"""The escalation engine against real PostgreSQL and Redis, with time travel."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from redis import Redis
from time_machine import TimeMachineFixture

from incidents import services
from incidents.errors import NoEscalationPolicy
from incidents.models import EventKind, Incident, Service, Status
from paging import escalation, state
from paging.models import MaintenanceWindow, Page, PageStatus
from tests.factories import IncidentFactory, UserFactory, contact, policy_with_levels

T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


@pytest.fixture
def people(db: None) -> dict[str, User]:
    found = {name: UserFactory(username=name) for name in ("ana", "ben", "cy")}
    for person in found.values():
        contact(person)
    return found


@pytest.fixture
def paged_service(web: Service, people: dict[str, User]) -> Service:
    web.escalation_policy = policy_with_levels((5, [people["ana"]]), (10, [people["ben"]]))
    web.save()
    return web


Committed = Callable[[], AbstractContextManager[Any]]


@pytest.fixture
def committed(django_capture_on_commit_callbacks: Any) -> Committed:
    """A commit's after-effects, inside the test's one transaction.

    What a step defers to its commit (the Redis deadline and live state,
    counters, queued deliveries) runs as that step's block ends, as a real
    commit would run it; later steps see it. The tests using this need no
    second connection, so they need no real commits (``transaction=True``).
    """
    return lambda: django_capture_on_commit_callbacks(execute=True)


def paged_levels(incident: Incident) -> list[int]:
    return list(
        Page.objects.filter(incident=incident).order_by("pk").values_list("level", flat=True)
    )


def kinds(incident: Incident) -> list[str]:
    return list(incident.timeline.order_by("created_at", "pk").values_list("kind", flat=True))


@pytest.mark.django_db
def test_the_full_story_of_an_incident(
    paged_service: Service,
    people: dict[str, User],
    redis: Redis,
    time_machine: TimeMachineFixture,
    committed: Committed,
) -> None:
    paged_service.ack_timeout_minutes = 30
    paged_service.save()
    time_machine.move_to(T0, tick=False)

    # Opened: level 1 is paged at once, level 2 is due in 5 minutes.
    with committed():
        incident = IncidentFactory(service=paged_service)
    incident.refresh_from_db()
    assert incident.escalation_level == 1
    assert incident.next_escalation_at == T0 + timedelta(minutes=5)
    assert paged_levels(incident) == [1]
    assert redis.zscore(state.DEADLINES, incident.pk) == (T0 + timedelta(minutes=5)).timestamp()
    assert state.read_live([incident.pk])[incident.pk].paged == ["ana"]

    # Nothing due yet: a pass does nothing.
    time_machine.shift(timedelta(minutes=4))
    with committed():
        assert escalation.check() == {"claimed": 0}

    # No acknowledgement within 5 minutes: level 2.
    time_machine.shift(timedelta(minutes=1, seconds=1))
    with committed():
        assert escalation.check() == {"claimed": 1, "escalated": 1}
    incident.refresh_from_db()
    assert incident.escalation_level == 2
    assert paged_levels(incident) == [1, 2]
    assert state.read_live([incident.pk])[incident.pk].paged == ["ben"]

    # Acknowledged: no more pages, but the ack timeout is armed.
    with committed():
        services.acknowledge_incident(incident, actor=people["ben"])
    time_machine.shift(timedelta(minutes=20))
    with committed():
        assert escalation.check() == {"claimed": 0}
    assert paged_levels(incident) == [1, 2]

    # Still open 30 minutes after the acknowledgement: paged again from level 1.
    time_machine.shift(timedelta(minutes=10, seconds=1))
    with committed():
        assert escalation.check() == {"claimed": 1, "retriggered": 1}
    incident.refresh_from_db()
    assert incident.status == Status.TRIGGERED
    assert paged_levels(incident) == [1, 2, 1]

    # Resolved: the live state is gone and nothing else happens.
    with committed():
        services.resolve_incident(incident, actor=people["ana"])
    assert redis.zscore(state.DEADLINES, incident.pk) is None
    assert state.read_live([incident.pk]) == {}
    time_machine.shift(timedelta(hours=2))
    with committed():
        assert escalation.check() == {"claimed": 0}
    assert kinds(incident) == [
        EventKind.OPENED,
        EventKind.PAGED,
        EventKind.ESCALATED,
        EventKind.PAGED,
        EventKind.ACKNOWLEDGED,
        EventKind.RETRIGGERED,
        EventKind.ESCALATED,
        EventKind.PAGED,
        EventKind.RESOLVED,
    ]


@pytest.mark.django_db
def test_the_policy_repeats_then_stays_at_the_last_level(
    web: Service,
    people: dict[str, User],
    redis: Redis,
    time_machine: TimeMachineFixture,
    committed: Committed,
) -> None:
    web.escalation_policy = policy_with_levels((1, [people["ana"]]), (1, [people["ben"]]), repeat=1)
    web.save()
    time_machine.move_to(T0, tick=False)
    with committed():
        incident = IncidentFactory(service=web)
    for _ in range(6):
        time_machine.shift(timedelta(minutes=1, seconds=1))
        with committed():
            escalation.check()
    incident.refresh_from_db()
    assert paged_levels(incident) == [1, 2, 1, 2]
    assert incident.next_escalation_at is None
    assert redis.zscore(state.DEADLINES, incident.pk) is None

    # By hand, the last level can still be paged again.
    with committed():
        services.escalate_incident(incident, actor=people["cy"])
    assert paged_levels(incident) == [1, 2, 1, 2, 2]


def window(service: Service, start: datetime, end: datetime) -> MaintenanceWindow:
    return MaintenanceWindow.objects.create(
        service=service, start=start, end=end, reason="database upgrade"
    )


def paged_messages(incident: Incident) -> list[str]:
    events = incident.timeline.filter(kind__in=[EventKind.PAGED, EventKind.ESCALATED])
    return list(events.order_by("created_at", "pk").values_list("message", flat=True))


@pytest.mark.django_db
def test_maintenance_records_the_incident_and_pages_when_the_window_ends(
    paged_service: Service, redis: Redis, time_machine: TimeMachineFixture, committed: Committed
) -> None:
    """Opened during maintenance: nobody is paged, once; still open when the
    window ends, level 1 is paged then."""
    time_machine.move_to(T0, tick=False)
    end = T0 + timedelta(hours=1)
    window(paged_service, T0 - timedelta(hours=1), end)
    with committed():
        incident = IncidentFactory(service=paged_service)
    incident.refresh_from_db()
    assert Page.objects.count() == 0
    assert incident.escalation_level == 0
    assert incident.next_escalation_at == end  # the dashboard counts down to the window's end
    assert redis.zscore(state.DEADLINES, incident.pk) == end.timestamp()
    assert paged_messages(incident) == [
        "Nobody paged: maintenance window until 2026-11-23 04:00 UTC (database upgrade)"
    ]

    # Reconciliation and passes during the window change nothing, and say nothing more.
    time_machine.shift(timedelta(minutes=30))
    with committed():
        assert escalation.reconcile()["started"] == 0
    with committed():
        assert escalation.reconcile()["started"] == 0
    with committed():
        assert escalation.check() == {"claimed": 0}
    assert len(paged_messages(incident)) == 1

    time_machine.shift(timedelta(minutes=30, seconds=1))
    with committed():
        assert escalation.check() == {"claimed": 1, "started": 1}
    incident.refresh_from_db()
    assert incident.escalation_level == 1
    assert paged_levels(incident) == [1]
    assert paged_messages(incident)[1:] == [
        "Escalated to level 1 (its maintenance window ended)",
        "Paged ana (level 1)",
    ]


@pytest.mark.django_db
def test_a_window_holds_the_escalations_of_an_incident_opened_before_it(
    paged_service: Service,
    people: dict[str, User],
    redis: Redis,
    time_machine: TimeMachineFixture,
    committed: Committed,
) -> None:
    paged_service.ack_timeout_minutes = 10
    paged_service.save()
    time_machine.move_to(T0, tick=False)
    with committed():
        incident = IncidentFactory(service=paged_service)  # level 1 paged; level 2 due at +5 min
    end = T0 + timedelta(minutes=40)
    window(paged_service, T0 + timedelta(minutes=1), end)

    time_machine.shift(timedelta(minutes=5, seconds=1))
    with committed():
        assert escalation.check() == {"claimed": 1, "held": 1}
    incident.refresh_from_db()
    assert incident.escalation_level == 1
    assert incident.next_escalation_at == end
    assert paged_levels(incident) == [1]
    assert paged_messages(incident)[-1].startswith("Escalation held: maintenance window until")
    assert state.read_live([incident.pk])[incident.pk].paged == ["ana"]  # still shown as paged

    # An acknowledgement timeout falling inside the window is held the same way.
    with committed():
        services.acknowledge_incident(incident, actor=people["ana"])
    time_machine.shift(timedelta(minutes=10))
    with committed():
        assert escalation.check() == {"claimed": 1, "held": 1}
    incident.refresh_from_db()
    assert incident.status == Status.ACKNOWLEDGED
    assert len([m for m in paged_messages(incident) if m.startswith("Escalation held")]) == 1

    time_machine.move_to(end + timedelta(seconds=1), tick=False)
    with committed():
        assert escalation.check() == {"claimed": 1, "retriggered": 1}
    assert paged_levels(incident) == [1, 1]


@pytest.mark.django_db
def test_a_window_cut_short_in_the_admin_lets_its_incidents_page_at_once(
    paged_service: Service,
    root: User,
    redis: Redis,
    time_machine: TimeMachineFixture,
    committed: Committed,
) -> None:
    time_machine.move_to(T0, tick=False)
    # Paged before any window, its next deadline happening to fall at the window's end.
    with committed():
        other = IncidentFactory(service=paged_service, title="not held")
    Incident.objects.filter(pk=other.pk).update(next_escalation_at=T0 + timedelta(hours=4))
    state.set_deadline(other.pk, T0 + timedelta(hours=4))
    held = window(paged_service, T0 - timedelta(hours=1), T0 + timedelta(hours=4))
    with committed():
        incident = IncidentFactory(service=paged_service)
    admin = Client()
    admin.force_login(root)

    time_machine.shift(timedelta(minutes=10))
    with committed():
        response = admin.post(
            f"/admin/paging/maintenancewindow/{held.pk}/change/",
            {
                "service": paged_service.pk,
                "start_0": "2026-11-23",
                "start_1": "02:00:00",
                "end_0": "2026-11-23",
                "end_1": "03:05:00",
                "reason": "done early",
            },
        )
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.next_escalation_at == T0 + timedelta(minutes=10)  # due now, not at 07:00
    other.refresh_from_db()
    assert other.next_escalation_at == T0 + timedelta(hours=4)  # an ordinary deadline stays
    with committed():
        assert escalation.check() == {"claimed": 1, "started": 1}
    assert paged_levels(incident) == [1]

    # Deleting a window releases what it held too.
    with committed():
        second = IncidentFactory(service=paged_service, title="later")
    with committed():
        assert escalation.check() == {"claimed": 0}
    gone = window(paged_service, T0, T0 + timedelta(hours=1))
    Incident.objects.filter(pk=second.pk).update(escalation_level=0, next_escalation_at=None)
    with committed():
        escalation.start(second.pk)
    second.refresh_from_db()
    assert second.next_escalation_at == T0 + timedelta(hours=1)
    with committed():
        response = admin.post(f"/admin/paging/maintenancewindow/{gone.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    with committed():
        assert escalation.check() == {"claimed": 1, "started": 1}
    assert paged_levels(second) == [1, 1]


@pytest.mark.django_db
def test_an_incident_set_to_land_unpaged_says_so_once(
    paged_service: Service, redis: Redis, committed: Committed
) -> None:
    with committed():
        incident = IncidentFactory(service=paged_service, data={"unpaged": True})
    for _ in range(3):
        with committed():
            assert escalation.reconcile()["started"] == 0
    assert Page.objects.count() == 0
    assert paged_messages(incident) == ["Nobody paged: this incident was set to land unpaged"]


@pytest.mark.django_db
def test_a_service_without_a_policy_says_so_and_cannot_be_escalated(
    web: Service, redis: Redis, committed: Committed
) -> None:
    with committed():
        incident = IncidentFactory(service=web)
    assert "no escalation policy" in incident.timeline.get(kind=EventKind.PAGED).message
    with pytest.raises(NoEscalationPolicy), committed():
        services.escalate_incident(incident, actor=None)


@pytest.mark.django_db
def test_people_without_contact_methods_show_as_failed_pages(
    web: Service, redis: Redis, committed: Committed
) -> None:
    nobody = UserFactory(username="dana")
    web.escalation_policy = policy_with_levels((5, [nobody]))
    web.save()
    with committed():
        incident = IncidentFactory(service=web)
    page = Page.objects.get(incident=incident)
    assert page.status == PageStatus.FAILED
    assert page.error == "no contact method"


# Real commits: the checkers are threads with connections of their own.
@pytest.mark.django_db(transaction=True)
def test_two_checkers_at_once_escalate_each_incident_exactly_once(
    paged_service: Service, redis: Redis, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(T0, tick=False)
    incidents = [IncidentFactory(service=paged_service) for _ in range(10)]
    time_machine.shift(timedelta(minutes=6))
    # Both claim from Redis at the same moment; the deadline index was also
    # rebuilt in between, re-exposing everything a checker had claimed.
    barrier = threading.Barrier(3)

    def checker() -> None:
        try:
            barrier.wait()
            escalation.check()
            escalation.reconcile()
            escalation.check()
        finally:
            connection.close()

    threads = [threading.Thread(target=checker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for incident in incidents:
        assert paged_levels(incident) == [1, 2]
        assert incident.timeline.filter(kind=EventKind.ESCALATED).count() == 1


@pytest.mark.django_db
def test_flushing_redis_loses_no_due_escalation(
    paged_service: Service, redis: Redis, time_machine: TimeMachineFixture, committed: Committed
) -> None:
    time_machine.move_to(T0, tick=False)
    with committed():
        incident = IncidentFactory(service=paged_service)
    redis.flushdb()  # triage's database; parallel test workers use others of the same server
    time_machine.shift(timedelta(minutes=6))
    with committed():
        assert escalation.check() == {"claimed": 0}  # Redis knows nothing
    with committed():
        assert escalation.reconcile() == {"started": 0, "deadlines": 1}
    with committed():
        assert escalation.check() == {"claimed": 1, "escalated": 1}
    assert paged_levels(incident) == [1, 2]


@pytest.mark.django_db
def test_an_incident_whose_paging_never_started_is_started_by_reconciliation(
    paged_service: Service, redis: Redis, committed: Committed
) -> None:
    with committed():
        incident = IncidentFactory(service=paged_service)
    Page.objects.all().delete()
    Incident.objects.filter(pk=incident.pk).update(escalation_level=0, next_escalation_at=None)
    with committed():
        assert escalation.reconcile()["started"] == 1
    assert paged_levels(incident) == [1]


# Real commits: the acknowledgement and the check race from two threads.
@pytest.mark.django_db(transaction=True)
def test_acknowledge_racing_an_escalation_leaves_a_consistent_state(
    paged_service: Service, people: dict[str, User], redis: Redis, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(T0, tick=False)
    incidents = [IncidentFactory(service=paged_service) for _ in range(8)]
    time_machine.shift(timedelta(minutes=6))
    barrier = threading.Barrier(2)

    def acknowledge_all() -> None:
        try:
            barrier.wait()
            for incident in incidents:
                services.acknowledge_incident(incident, actor=people["ana"])
        finally:
            connection.close()

    def check() -> None:
        try:
            barrier.wait()
            escalation.check()
        finally:
            connection.close()

    threads = [threading.Thread(target=acknowledge_all), threading.Thread(target=check)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for incident in incidents:
        events = kinds(incident)
        assert Incident.objects.get(pk=incident.pk).status == Status.ACKNOWLEDGED
        if EventKind.ESCALATED in events:
            # The page was recorded before the acknowledgement.
            assert events.index(EventKind.ESCALATED) < events.index(EventKind.ACKNOWLEDGED)
            assert paged_levels(incident) == [1, 2]
        else:
            assert paged_levels(incident) == [1]
    assert escalation.check() == {"claimed": 0}


# Real commits: the test counts them.
@pytest.mark.django_db(transaction=True)
def test_nobody_paged_is_written_in_the_opening_transaction(web: Service, redis: Redis) -> None:
    """An unrouted alert costs one transaction, and its "nobody paged" row
    cannot exist without the incident (or the other way round)."""
    with CaptureQueriesContext(connection) as queries:
        opened = services.open_incident(service=web, title="disk full", severity="error")
    commits = [query["sql"] for query in queries if query["sql"] == "COMMIT"]
    assert len(commits) == 1
    assert list(opened.incident.timeline.values_list("kind", flat=True).order_by("pk")) == [
        EventKind.OPENED,
        EventKind.PAGED,
    ]
