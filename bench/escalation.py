"""Escalation lateness and the cost of an escalation check.

1. Cost of one check (`paging.escalation.check`) with 100,000 active
   deadlines in Redis and none due: claim (one Lua call) + heartbeat.
2. Lateness, deadline → escalation recorded, with 10,000 open incidents
   waiting and 300 falling due over ~20 s, handled by a real Celery worker
   and beat (1 s check interval), once both are up.
3. An escalation storm: 10,000 open incidents whose deadlines fall due in
   the same second, handled by a real worker and beat: seconds from the
   deadline until the last escalation is committed (polled), escalations
   doubled or missed, and whether every escalation's page is queued (a Page
   row per incident and step, queued or already sent to a local sink).

    python -m triage.devstack bench bench/escalation.py
"""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from common import BIN, ROOT, Figure, percentile, print_table, setup_django, stop

OPEN = 10_000
DUE = 300
SPREAD_SECONDS = 20
BEAT = os.environ.get("ESCALATION_CHECK_SECONDS", "1")
STORM = int(os.environ.get("BENCH_STORM", "10000"))
STORM_TARGET_SECONDS = 10.0
STORM_GIVE_UP_SECONDS = float(os.environ.get("BENCH_STORM_GIVE_UP", "240"))
CONCURRENCY = os.environ.get("BENCH_WORKER_CONCURRENCY", "2")


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


def _start_worker_and_beat(
    extra_env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "ESCALATION_CHECK_SECONDS": BEAT,
        "LOG_LEVEL": "warning",
        **(extra_env or {}),
    }
    worker = subprocess.Popen(
        [
            str(BIN / "celery"),
            "-A",
            "triage",
            "worker",
            "-l",
            "WARNING",
            "--concurrency",
            CONCURRENCY,
        ],
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
    return worker, beat


def _wait_for_heartbeat() -> None:
    from paging import state

    state.client().delete(state.HEARTBEAT)
    started = time.monotonic()
    while state.heartbeat() is None and time.monotonic() < started + 60:
        time.sleep(0.2)


class _Sink(BaseHTTPRequestHandler):
    """Stands in for the people's webhook (apprise ``json://``): takes every message."""

    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Sink.received += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def storm() -> list[Figure]:
    """STORM incidents at level 1, every next deadline in the same second."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.utils import timezone

    from incidents.models import EventKind, Incident, Service, TimelineEvent
    from paging import state
    from paging.models import ContactMethod, EscalationLevel, EscalationPolicy, Page, PageStatus

    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    user, _ = User.objects.get_or_create(username="bench-storm-oncall")
    ContactMethod.objects.filter(user=user).delete()
    ContactMethod.objects.create(
        user=user, name="hook", url=f"json://127.0.0.1:{sink.server_address[1]}/hook"
    )
    policy = EscalationPolicy.objects.create(name=f"bench storm {time.time()}")
    for position in range(3):
        level = EscalationLevel.objects.create(policy=policy, position=position, delay_minutes=30)
        level.users.add(user)
    service, _ = Service.objects.get_or_create(slug="bench-storm", defaults={"name": "Bench storm"})
    service.escalation_policy = policy
    service.save()
    state.client().delete(state.DEADLINES)  # the lateness scenario's waiting incidents
    worker, beat = _start_worker_and_beat({"OUTBOUND_ALLOW": "127.0.0.1"})
    _wait_for_heartbeat()
    # The incidents are opened with a deadline an hour away, then all moved
    # to one whole second a few seconds from now (one UPDATE, and ZADD LT in
    # Redis): they are in PostgreSQL and Redis well before it, as if opened
    # half an hour ago, however long inserting them took on a busy machine
    # (a storm whose deadlines reach Redis piecemeal, while checks run, is a
    # different figure).
    _open(
        service, "storm", "critical", timezone.now(), [timezone.now() + timedelta(hours=1)] * STORM
    )
    due_at = datetime.fromtimestamp(int(time.time()) + 4, UTC)
    storm_incidents = Incident.objects.filter(service=service, status="triggered")
    storm_incidents.update(next_escalation_at=due_at)
    state.merge_deadlines((pk, due_at) for pk in storm_incidents.values_list("pk", flat=True))
    ahead = due_at.timestamp() - time.time()
    escalated = TimelineEvent.objects.filter(kind=EventKind.ESCALATED, incident__service=service)
    done_after = STORM_GIVE_UP_SECONDS
    try:
        while time.time() < due_at.timestamp():
            time.sleep(0.05)
        give_up = due_at.timestamp() + STORM_GIVE_UP_SECONDS
        while time.time() < give_up:
            if escalated.count() >= STORM:
                done_after = time.time() - due_at.timestamp()
                break
            time.sleep(0.25)
        queued = (
            Page.objects.filter(
                incident__service=service,
                step=2,
                status__in=(PageStatus.QUEUED, PageStatus.SENDING, PageStatus.SENT),
            )
            .values("incident")
            .distinct()
            .count()
        )
        time.sleep(2)  # a doubled escalation would land now
    finally:
        for process in (beat, worker):
            stop(process)
        sink.shutdown()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) - count(DISTINCT incident_id) FROM incidents_timelineevent e "
            "JOIN incidents_incident i ON i.id = e.incident_id "
            "WHERE e.kind = %s AND i.service_id = %s",
            [EventKind.ESCALATED, service.pk],
        )
        doubled = cursor.fetchone()[0]
    done = escalated.values("incident").distinct().count()
    missed = STORM - done
    pages = Page.objects.filter(incident__service=service, step=2)
    doubled_pages = pages.count() - pages.values("incident").distinct().count()
    return [
        Figure(
            f"escalation storm: {STORM:,} due in one second, all escalated in",
            done_after,
            "s",
            f"<= {STORM_TARGET_SECONDS:g} s",
            done_after <= STORM_TARGET_SECONDS and missed == 0,
        ),
        Figure(
            "escalation storm: deadlines in Redis this long before due",
            ahead,
            "s",
            "> 0",
            ahead > 0,
        ),
        Figure("escalation storm: escalations missed", missed, "count", "0", missed == 0),
        Figure(
            "escalation storm: escalations / pages doubled",
            doubled + doubled_pages,
            "count",
            "0",
            doubled + doubled_pages == 0,
        ),
        Figure(
            "escalation storm: pages queued or sent when the last escalated",
            queued,
            f"of {STORM}",
            f"{STORM}",
            queued == STORM,
        ),
    ]


def lateness() -> list[Figure]:
    from django.contrib.auth.models import User
    from django.db.models import Q
    from django.utils import timezone

    from incidents.models import EventKind, Service, TimelineEvent
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
    worker, beat = _start_worker_and_beat()
    # Lateness is measured in the steady state: the 300 deadlines are set
    # once beat and the worker have finished a first check (a heartbeat in
    # Redis), not while they are still starting (seconds on a slow hour).
    _wait_for_heartbeat()  # check_cost() above left one: it is deleted first
    now = timezone.now()
    due = [now + timedelta(seconds=5 + random.uniform(0, SPREAD_SECONDS)) for _ in range(DUE)]
    _open(service, "due", "critical", now, due)
    # The deadline's escalation only: bench-oncall has no contact method, so
    # each level reaches nobody and the engine pages the next level at once
    # (a second "escalated" entry, reason "unreachable", that is no double).
    timeouts = Q(kind=EventKind.ESCALATED, incident__service=service, data__reason="timeout")
    try:
        deadline = time.monotonic() + SPREAD_SECONDS + 40
        escalated = 0
        while time.monotonic() < deadline and escalated < DUE:
            time.sleep(1)
            escalated = TimelineEvent.objects.filter(timeouts).count()
    finally:
        for process in (beat, worker):
            stop(process)
    events = TimelineEvent.objects.filter(timeouts)
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
    if os.environ.get("BENCH_ONLY") == "storm":
        return storm()
    return check_cost() + lateness() + storm()


if __name__ == "__main__":
    print_table("escalation", run())
