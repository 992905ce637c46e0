"""Escalation lateness and the cost of an escalation check.

1. Cost of one check (`paging.escalation.check`) with 100,000 active
   deadlines in Redis and none due: claim (one Lua call) + heartbeat.
2. Lateness, deadline → escalation recorded, with 10,000 open incidents
   waiting and 300 falling due over ~20 s, handled by a real Celery worker
   and beat (1 s check interval), once both are up.

    python -m triage.devstack bench bench/escalation.py
"""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from common import BIN, ROOT, Figure, percentile, print_table, setup_django, stop

OPEN = 10_000
DUE = 300
SPREAD_SECONDS = 20
BEAT = os.environ.get("ESCALATION_CHECK_SECONDS", "1")


def check_cost() -> list[Figure]:
    from paging import escalation, state

    redis = state.client()
    redis.delete(state.DEADLINES)
    far = time.time() + 86_400
    pipe = redis.pipeline()
    for n in range(100_000):
        pipe.zadd(state.DEADLINES, {str(10_000_000 + n): far + n})
        if n % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    samples = []
    for _ in range(1000):
        started = time.perf_counter()
        result = escalation.check()
        samples.append(time.perf_counter() - started)
        assert result == {"claimed": 0}
    redis.delete(state.DEADLINES)
    p50 = percentile(samples, 50) * 1000
    p99 = percentile(samples, 99) * 1000
    return [
        Figure("escalation check p50, 100,000 deadlines, none due", p50, "ms", "-"),
        Figure("escalation check p99, 100,000 deadlines, none due", p99, "ms", "<= 2 ms", p99 <= 2),
    ]


def _open(
    service: Any, title: str, severity: str, now: datetime, deadlines: list[datetime]
) -> None:
    """Incidents opened ``now`` and paged at level 1, one per next-escalation
    deadline, indexed in Redis."""
    from incidents.models import Incident
    from paging import state

    created = Incident.objects.bulk_create(
        (
            Incident(
                service=service,
                title=f"{title} {n}",
                severity=severity,
                opened_at=now,
                escalation_level=1,
                escalation_step=1,
                next_escalation_at=deadline,
            )
            for n, deadline in enumerate(deadlines)
        ),
        batch_size=2000,
    )
    state.merge_deadlines((i.pk, i.next_escalation_at) for i in created)  # type: ignore[misc]


def lateness() -> list[Figure]:
    from django.contrib.auth.models import User
    from django.utils import timezone

    from incidents.models import EventKind, Service, TimelineEvent
    from paging import state
    from paging.models import EscalationLevel, EscalationPolicy

    user, _ = User.objects.get_or_create(username="bench-oncall")
    policy = EscalationPolicy.objects.create(name=f"bench {time.time()}")
    for position in range(3):
        level = EscalationLevel.objects.create(policy=policy, position=position, delay_minutes=30)
        level.users.add(user)
    service, _ = Service.objects.get_or_create(
        slug="bench-paging", defaults={"name": "Bench paging"}
    )
    service.escalation_policy = policy
    service.save()
    now = timezone.now()
    waiting = [now + timedelta(hours=1, seconds=n) for n in range(OPEN)]
    _open(service, "waiting", "error", now, waiting)
    env = {**os.environ, "ESCALATION_CHECK_SECONDS": BEAT, "LOG_LEVEL": "warning"}
    worker = subprocess.Popen(
        [str(BIN / "celery"), "-A", "triage", "worker", "-l", "WARNING", "--concurrency", "2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    beat = subprocess.Popen(
        [
            str(BIN / "celery"),
            "-A",
            "triage",
            "beat",
            "-l",
            "WARNING",
            "-s",
            str(Path(tempfile.mkdtemp()) / "beat-schedule"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Lateness is measured in the steady state: the 300 deadlines are set
    # once beat and the worker have finished a first check (a heartbeat in
    # Redis), not while they are still starting (seconds on a slow hour).
    state.client().delete(state.HEARTBEAT)  # check_cost() above left one
    started = time.monotonic()
    while state.heartbeat() is None and time.monotonic() < started + 60:
        time.sleep(0.2)
    now = timezone.now()
    due = [now + timedelta(seconds=5 + random.uniform(0, SPREAD_SECONDS)) for _ in range(DUE)]
    _open(service, "due", "critical", now, due)
    try:
        deadline = time.monotonic() + SPREAD_SECONDS + 40
        escalated = 0
        while time.monotonic() < deadline and escalated < DUE:
            time.sleep(1)
            escalated = TimelineEvent.objects.filter(
                kind=EventKind.ESCALATED, incident__service=service
            ).count()
    finally:
        for process in (beat, worker):
            stop(process)
    events = TimelineEvent.objects.filter(kind=EventKind.ESCALATED, incident__service=service)
    late = [event.data["lateness_seconds"] for event in events]
    doubled = events.count() - events.values("incident").distinct().count()
    return [
        Figure(
            f"escalations done / due ({OPEN:,} open incidents)",
            len(late),
            f"of {DUE}",
            f"{DUE}",
            len(late) == DUE,
        ),
        Figure("escalations doubled", doubled, "count", "0", doubled == 0),
        Figure(f"escalation lateness p50 ({BEAT} s beat)", percentile(late, 50), "s", "-"),
        Figure(
            f"escalation lateness p99 ({BEAT} s beat)",
            percentile(late, 99),
            "s",
            "<= 1 s",
            percentile(late, 99) <= 1,
        ),
    ]


def run() -> list[Figure]:
    setup_django()
    return check_cost() + lateness()


if __name__ == "__main__":
    print_table("escalation", run())
