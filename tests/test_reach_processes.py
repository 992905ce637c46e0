"""Early escalation and quiet logs with real Celery worker and beat processes."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from redis import Redis

from incidents.models import EventKind, Incident, Service
from paging import notify, state
from paging.models import Page, PageStatus
from tests.factories import IncidentFactory, UserFactory, contact, policy_with_levels
from tests.processes import BIN, ROOT, app_env, celery_worker, stop, wait_for
from tests.receiver import Receiver, receiver

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    # The receivers and the refusing webhook listen on 127.0.0.1.
    pytest.mark.usefixtures("outbound_loopback"),
]

REFUSING = "json://127.0.0.1:9/hook"


@pytest.fixture
def inbox() -> Iterator[Receiver]:
    with receiver() as found:
        yield found


@contextmanager
def logged(args: list[str], log: Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=app_env(**env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        stop(process)


def test_two_workers_failing_the_last_attempts_at_once_escalate_once(
    web: Service, redis: Redis, inbox: Receiver
) -> None:
    people: dict[str, User] = {n: UserFactory(username=n) for n in ("ana", "cy", "bob")}
    contact(people["ana"], url=REFUSING)
    contact(people["cy"], url=REFUSING)
    contact(people["bob"], url=inbox.url)
    web.escalation_policy = policy_with_levels(
        (30, [people["ana"], people["cy"]]), (30, [people["bob"]])
    )
    web.save()
    # No worker yet: both level-1 pages wait in the queue, at their last attempt.
    incident = IncidentFactory(service=web)
    Page.objects.filter(incident=incident).update(attempt=notify.MAX_ATTEMPTS)
    with ExitStack() as stack:
        for _ in range(2):
            stack.enter_context(celery_worker())
        wait_for(lambda: len(inbox.messages) == 1, 40, "level 2 paged at once")
        wait_for(
            lambda: (
                not Page.objects.filter(
                    incident=incident, status__in=[PageStatus.QUEUED, PageStatus.SENDING]
                ).exists()
            ),
            20,
            "every page finished",
        )
    assert len(inbox.messages) == 1
    incident = Incident.objects.get(pk=incident.pk)
    assert incident.escalation_level == 2
    escalated = incident.timeline.filter(kind=EventKind.ESCALATED)
    assert [e.message for e in escalated] == [
        "Escalated to level 2 (nobody at level 1 could be reached)"
    ]
    workers = set(Page.objects.filter(incident=incident, level=1).values_list("status", flat=True))
    assert workers == {PageStatus.FAILED}


def test_a_worker_and_beat_log_no_line_for_checks_that_did_nothing(
    redis: Redis, tmp_path: Path
) -> None:
    log = tmp_path / "celery.log"
    env = {"ESCALATION_CHECK_SECONDS": "0.5"}
    worker = [str(BIN / "celery"), "-A", "triage", "worker", "-l", "INFO", "--concurrency", "1"]
    beat = [
        *[str(BIN / "celery"), "-A", "triage", "beat", "-l", "INFO"],
        *["-s", str(tmp_path / "schedule"), "--max-interval", "1"],
    ]
    with logged(worker, log, **env), logged(beat, log, **env):
        wait_for(lambda: state.heartbeat() is not None, 40, "a first pass")
        first = state.heartbeat() or 0
        wait_for(lambda: (state.heartbeat() or 0) > first + 3, 20, "more passes")
    lines = log.read_text().splitlines()
    assert any("celery@" in line or "beat" in line.lower() for line in lines)  # it did log
    # (The worker's start-up banner lists its tasks: "  . paging.check_escalations".)
    about_checks = [
        line for line in lines if "check_escalations" in line and not line.startswith("  . ")
    ]
    assert about_checks == []
    assert [line for line in lines if "escalation pass" in line] == []
