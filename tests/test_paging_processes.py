"""Paging end to end with real Celery worker and beat processes over Redis."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connections, transaction
from django.utils import timezone
from redis import Redis

from incidents import services
from incidents.models import EventKind, Incident, Service
from paging import state
from paging.models import Page, PageStatus
from tests.factories import IncidentFactory, UserFactory, contact, policy_with_levels
from tests.processes import BIN, ROOT, app_env, celery_worker, stop, wait_for
from tests.receiver import Receiver, receiver

# The receiver listens on 127.0.0.1, allowed here as staff would allow a LAN service.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("outbound_loopback"),
]


@contextmanager
def beat(folder: Path, name: str) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [
            str(BIN / "celery"),
            "-A",
            "triage",
            "beat",
            "-l",
            "INFO",
            "-s",
            str(folder / f"{name}-schedule"),
            "--max-interval",
            "1",
        ],
        cwd=ROOT,
        env=app_env(ESCALATION_CHECK_SECONDS="0.5"),
        start_new_session=True,
    )
    try:
        yield process
    finally:
        stop(process)


@pytest.fixture
def inbox() -> Iterator[Receiver]:
    with receiver() as found:
        yield found


@pytest.fixture
def team(db: None, inbox: Receiver) -> dict[str, User]:
    people = {name: UserFactory(username=name) for name in ("ana", "ben")}
    for person in people.values():
        contact(person, url=f"{inbox.url}?name={person.username}")
    return people


@pytest.fixture
def service(web: Service, team: dict[str, User]) -> Service:
    web.escalation_policy = policy_with_levels((1, [team["ana"]]), (1, [team["ben"]]))
    web.ack_timeout_minutes = 30
    web.save()
    return web


def make_due(incident: Incident) -> None:
    """What a minute of waiting would do: the deadline has passed."""
    past = timezone.now() - timedelta(seconds=1)
    Incident.objects.filter(pk=incident.pk).update(next_escalation_at=past)
    state.set_deadline(incident.pk, past)


def test_a_real_worker_and_beat_page_escalate_and_stop_on_acknowledge(
    service: Service, team: dict[str, User], inbox: Receiver, redis: Redis, tmp_path: Path
) -> None:
    with celery_worker(), beat(tmp_path, "beat"):
        incident = IncidentFactory(service=service, title="Checkout returns 502")
        wait_for(lambda: len(inbox.messages) == 1, 30, "level 1 paged through the worker")
        wait_for(lambda: Page.objects.get().status == PageStatus.SENT, 10, "page recorded as sent")

        make_due(incident)
        wait_for(lambda: len(inbox.messages) == 2, 30, "level 2 paged after the deadline")
        incident.refresh_from_db()
        assert incident.escalation_level == 2
        assert state.heartbeat() is not None

        # Acknowledged, then still open when the service's ack timeout ends:
        # re-triggered, level 1 is paged again.
        services.acknowledge_incident(incident, actor=team["ben"])
        incident.refresh_from_db()
        assert incident.next_escalation_at is not None
        assert len(inbox.messages) == 2
        make_due(incident)
        wait_for(lambda: len(inbox.messages) == 3, 30, "re-triggered after the ack timeout")
    titles = [message["title"] for message in inbox.messages]
    assert titles == [f"[SEV2] #{incident.pk} Checkout returns 502"] * 3
    assert incident.timeline.filter(kind=EventKind.RETRIGGERED).count() == 1


def test_two_beats_and_two_workers_escalate_each_incident_once(
    service: Service, inbox: Receiver, redis: Redis, tmp_path: Path
) -> None:
    incidents = [IncidentFactory(service=service) for _ in range(10)]
    with ExitStack() as stack:
        for name in ("one", "two"):
            stack.enter_context(celery_worker(env=app_env(ESCALATION_CHECK_SECONDS="0.5")))
            stack.enter_context(beat(tmp_path, name))
        wait_for(lambda: len(inbox.messages) == 10, 40, "level 1 of every incident paged")
        for incident in incidents:
            make_due(incident)
        wait_for(lambda: len(inbox.messages) == 20, 40, "level 2 of every incident paged")
        # Several more passes by both beats change nothing.
        last = state.heartbeat() or 0
        wait_for(lambda: (state.heartbeat() or 0) > last + 2, 20, "more escalation passes")
    assert len(inbox.messages) == 20
    for incident in incidents:
        assert incident.timeline.filter(kind=EventKind.ESCALATED).count() == 1
        assert list(incident.pages.values_list("level", flat=True).order_by("pk")) == [1, 2]


def test_a_worker_killed_mid_escalation_loses_nothing_and_doubles_nothing(
    service: Service, inbox: Receiver, redis: Redis, tmp_path: Path
) -> None:
    incident = IncidentFactory(service=service)
    env = app_env(ESCALATION_CHECK_SECONDS="0.5", ESCALATION_CLAIM_LEASE="3")
    with ExitStack() as stack:
        stack.enter_context(celery_worker(env=env))
        wait_for(lambda: len(inbox.messages) == 1, 30, "level 1 paged")
    # Hold the incident's row lock, so the next worker blocks inside its
    # escalation transaction, and kill that worker there.
    with transaction.atomic():
        Incident.objects.select_for_update().get(pk=incident.pk)
        make_due(incident)
        with celery_worker(env=env) as victim, beat(tmp_path, "beat"):
            wait_for(blocked_on_lock, 30, "the worker waiting on the row lock")
            os.killpg(victim.pid, signal.SIGKILL)
    # Its transaction died with it. A new worker takes the deadline again
    # once the claim's lease ends, and escalates exactly once.
    with celery_worker(env=env), beat(tmp_path, "beat-2"):
        wait_for(lambda: len(inbox.messages) == 2, 40, "level 2 paged after the kill")
        last = state.heartbeat() or 0
        wait_for(lambda: (state.heartbeat() or 0) > last + 4, 20, "more passes")
    assert incident.timeline.filter(kind=EventKind.ESCALATED).count() == 1
    assert list(incident.pages.values_list("level", flat=True).order_by("pk")) == [1, 2]


def blocked_on_lock() -> bool:
    """Whether another session waits for a lock (the worker's SELECT ... FOR UPDATE)."""
    with connections["default"].cursor() as cursor:
        # Statistics are a snapshot per transaction, and this runs inside one.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        # (The query text is truncated in pg_stat_activity: match the wait.)
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return bool(cursor.fetchone()[0])
