"""Heartbeat monitors: pings, the overdue check, and the race between them."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.test import Client
from redis import Redis

from incidents.models import Incident, Service, Status
from integrations import services
from integrations.keys import NewKey, revoke_integration
from integrations.models import Integration
from integrations.tasks import check_heartbeats
from tests.integration_factories import integration
from triage.celery import app as celery_app

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def backup(web: Service, redis: Redis) -> NewKey:
    return integration(web, "heartbeat", name="nightly backup", heartbeat_timeout_seconds=60)


def ping(client: Client, key: str, method: str = "post") -> int:
    response = getattr(client, method)(f"/integrations/heartbeat/{key}")
    return int(response.status_code)


def test_a_ping_starts_watching_and_sets_the_deadline(client: Client, backup: NewKey) -> None:
    with time_machine.travel(T0, tick=False):
        assert ping(client, backup.raw) == 200
    heartbeat = Integration.objects.get()
    assert heartbeat.last_ping_at == T0
    assert heartbeat.heartbeat_due_at == T0 + timedelta(seconds=60)


def test_get_works_too_for_curl_and_uptime_tools(client: Client, backup: NewKey) -> None:
    assert ping(client, backup.raw, "get") == 200
    assert ping(client, backup.raw, "put") == 405


def test_a_heartbeat_that_never_pinged_is_not_watched(backup: NewKey) -> None:
    assert services.open_overdue_heartbeats(now=T0 + timedelta(days=30)) == 0
    assert not Incident.objects.exists()


def test_a_missed_deadline_opens_one_incident_and_the_next_ping_resolves_it(
    client: Client, backup: NewKey
) -> None:
    with time_machine.travel(T0, tick=False):
        ping(client, backup.raw)
    assert services.open_overdue_heartbeats(now=T0 + timedelta(seconds=59)) == 0
    assert services.open_overdue_heartbeats(now=T0 + timedelta(seconds=61)) == 1
    assert services.open_overdue_heartbeats(now=T0 + timedelta(seconds=90)) == 0  # already open
    incident = Incident.objects.get()
    assert incident.source == "heartbeat"
    assert incident.title == "Heartbeat missed: nightly backup"
    assert incident.dedup_key == f"heartbeat:{backup.integration.pk}"
    assert "No ping for 61 s" in incident.details

    with time_machine.travel(T0 + timedelta(seconds=120), tick=False):
        response = client.post(f"/integrations/heartbeat/{backup.raw}")
    assert response.json()["resolved_incident"] == incident.pk
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED
    assert not Integration.objects.get().heartbeat_down


def test_after_recovering_a_later_miss_opens_a_new_incident(client: Client, backup: NewKey) -> None:
    with time_machine.travel(T0, tick=False):
        ping(client, backup.raw)
    services.open_overdue_heartbeats(now=T0 + timedelta(seconds=61))
    with time_machine.travel(T0 + timedelta(seconds=70), tick=False):
        ping(client, backup.raw)
    assert services.open_overdue_heartbeats(now=T0 + timedelta(seconds=200)) == 1
    assert list(Incident.objects.order_by("pk").values_list("status", flat=True)) == [
        "resolved",
        "triggered",
    ]


def test_a_heartbeat_incident_resolved_by_hand_does_not_break_the_next_ping(
    client: Client, backup: NewKey
) -> None:
    with time_machine.travel(T0, tick=False):
        ping(client, backup.raw)
    services.open_overdue_heartbeats(now=T0 + timedelta(seconds=61))
    from incidents.services import resolve_incident

    resolve_incident(Incident.objects.get(), actor=None)
    assert ping(client, backup.raw) == 200
    assert not Integration.objects.get().heartbeat_down


def test_revoked_heartbeats_are_not_watched(client: Client, backup: NewKey) -> None:
    with time_machine.travel(T0, tick=False):
        ping(client, backup.raw)
    revoke_integration(backup.integration)
    assert services.open_overdue_heartbeats(now=T0 + timedelta(hours=1)) == 0
    assert ping(client, backup.raw) == 401


def test_a_key_of_another_kind_cannot_ping(client: Client, web: Service) -> None:
    events = integration(web, "events_v2")
    assert ping(client, events.raw) == 403


def test_pings_are_rate_limited(
    client: Client, web: Service, redis: Redis, one_window: None
) -> None:
    chatty = integration(web, "heartbeat", rate_limit_per_minute=2)
    assert [ping(client, chatty.raw) for _ in range(3)] == [200, 200, 429]


def test_one_failing_heartbeat_does_not_stop_the_others(
    client: Client, web: Service, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = integration(web, "heartbeat", name="first", heartbeat_timeout_seconds=60)
    second = integration(web, "heartbeat", name="second", heartbeat_timeout_seconds=60)
    with time_machine.travel(T0, tick=False):
        ping(client, first.raw)
        ping(client, second.raw)
    real_open = services.incident_services.open_incident

    def open_or_fail(**kwargs: object) -> object:
        if "first" in str(kwargs["title"]):
            raise RuntimeError("boom")
        return real_open(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(services.incident_services, "open_incident", open_or_fail)
    now = T0 + timedelta(seconds=61)
    assert services.open_overdue_heartbeats(now=now) == 1
    failed = Integration.objects.get(pk=first.integration.pk)
    assert not failed.heartbeat_down
    assert failed.heartbeat_due_at == now + services.RETRY_BAD_HEARTBEAT
    assert Incident.objects.get().title == "Heartbeat missed: second"


def test_the_beat_schedule_runs_the_check_every_ten_seconds() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["integrations-heartbeats"]
    assert entry["task"] == "integrations.check_heartbeats"
    assert entry["schedule"] == 10.0
    assert "integrations-heartbeats" in celery_app.conf.beat_schedule
    assert "integrations.check_heartbeats" in celery_app.tasks


def test_the_task_opens_incidents_for_overdue_heartbeats(client: Client, backup: NewKey) -> None:
    with time_machine.travel(T0, tick=False):
        ping(client, backup.raw)
    with time_machine.travel(T0 + timedelta(minutes=5), tick=False):
        assert check_heartbeats.apply().get() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_checks_open_exactly_one_incident(client: Client, backup: NewKey) -> None:
    with time_machine.travel(T0, tick=False):
        ping(client, backup.raw)
    barrier = threading.Barrier(8)
    results: list[int] = []

    def check() -> None:
        try:
            barrier.wait()
            results.append(services.open_overdue_heartbeats(now=T0 + timedelta(seconds=61)))
        finally:
            connection.close()

    threads = [threading.Thread(target=check) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [0] * 7 + [1]
    assert Incident.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_ping_racing_the_check_never_leaves_a_stale_state(client: Client, backup: NewKey) -> None:
    """Whichever wins, the heartbeat's flag and its incident agree afterwards."""
    with time_machine.travel(T0, tick=False):
        ping(client, backup.raw)
    now = T0 + timedelta(seconds=61)
    for _ in range(5):
        barrier = threading.Barrier(2)

        def check(barrier: threading.Barrier = barrier) -> None:
            try:
                barrier.wait()
                services.open_overdue_heartbeats(now=now)
            finally:
                connection.close()

        def beat(barrier: threading.Barrier = barrier) -> None:
            try:
                barrier.wait()
                services.record_ping(Integration.objects.get(), now=now)
            finally:
                connection.close()

        threads = [threading.Thread(target=check), threading.Thread(target=beat)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        heartbeat = Integration.objects.get()
        open_incidents = Incident.objects.exclude(status=Status.RESOLVED).count()
        assert open_incidents == (1 if heartbeat.heartbeat_down else 0)
        # Reset for the next round: overdue again, no incident open.
        Incident.objects.exclude(status=Status.RESOLVED).update(
            status=Status.RESOLVED, resolved_at=now
        )
        Integration.objects.update(heartbeat_down=False, heartbeat_due_at=T0)
