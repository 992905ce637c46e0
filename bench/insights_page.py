"""/insights latency at 100,000 incidents, cold (cache emptied before each
request) and cached.

Fills N incidents (default 100,000) spread evenly over the last 90 days
across 20 services, each with the timeline and pages a real one has (opened,
paged, acknowledged, resolved; one in ten escalated to level 2 and paged
again; alert repeats on the noisy keys; one or two contact methods per page),
then measures through gunicorn (2 workers) as a logged-in responder, on a
keep-alive connection:

- cold: the figures' cache entry deleted before every request, so each one
  reads the daily roll-ups plus the live incidents (today's and the open
  ones) and draws the charts (the roll-ups written first, as beat's
  ``insights.refresh`` does, and timed);
- cached: the same page again and again within the cache's minute;
- in-process, before those: cold requests with nothing remembered by the
  process either (``insights.rolled`` keeps the closed days' part of recent
  ranges: a fresh worker, or the first request after a day is rolled).

The 90-day range covers every incident: the heaviest page there is.

    python -m triage.devstack bench bench/insights_page.py [N]

(Not bench/insights.py: that name would hide the ``insights`` app from the
benchmarks, which run with bench/ first on the import path.)
"""

from __future__ import annotations

import http.client
import os
import random
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from common import Figure, print_table, setup_django, start_gunicorn, stop, summary_ms

COLD = 40
# In-process cold requests with nothing remembered by the process either
# (insights.rolled keeps the closed days' part of recent ranges).
COLDEST = 10
CACHED = 300
WARM_UP = 4
SERVICES = 20
PEOPLE = 12
BATCH = 5000


def fill(n: int, *, now: datetime) -> None:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.db.models import F

    from incidents.models import EventKind, Incident, Service, TimelineEvent
    from paging.models import ContactMethod, Page, PageStatus

    # Deleting 100,000 incidents through the ORM collects every related row
    # in Python first; the bench owns this throw-away database.
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE incidents_incident, incidents_timelineevent, paging_page"
            " RESTART IDENTITY CASCADE"
        )
    services = [
        Service.objects.get_or_create(slug=f"bench-{i}", defaults={"name": f"Bench {i}"})[0]
        for i in range(SERVICES)
    ]
    people = [User.objects.get_or_create(username=f"responder-{i}")[0] for i in range(PEOPLE)]
    methods = {
        person.pk: [
            ContactMethod.objects.get_or_create(
                user=person, name=name, defaults={"url": f"json://203.0.113.7/{name}"}
            )[0]
            for name in (("phone", "mail") if index % 3 == 0 else ("phone",))
        ]
        for index, person in enumerate(people)
    }
    rng = random.Random(17)
    # A few keys do most of the noise (a long tail, as in real monitoring).
    keys = [f"alert-{k}" for k in range(400)]
    weights = [1 / (k + 1) for k in range(len(keys))]
    severities = ["critical", "error", "warning", "info"]
    span = timedelta(days=90).total_seconds() - 3600
    incidents: list[Incident] = []
    for i in range(n):
        opened = now - timedelta(seconds=span * (i + 1) / n)
        roll = rng.random()
        status = "triggered" if roll < 0.01 else "acknowledged" if roll < 0.03 else "resolved"
        acked = status != "triggered" and rng.random() < 0.97
        if status == "acknowledged":
            acked = True
        keyless = rng.random() < 0.2
        key = "" if keyless else rng.choices(keys, weights)[0]
        if status != "resolved" and key:
            key = f"open-{i}"  # one open incident per key and service
        acknowledged_at = (
            opened + timedelta(seconds=rng.lognormvariate(5.5, 1.0)) if acked else None
        )
        resolved_at = (
            (acknowledged_at or opened) + timedelta(seconds=rng.lognormvariate(7.5, 1.2))
            if status == "resolved"
            else None
        )
        incidents.append(
            Incident(
                service=services[i % SERVICES],
                title=f"Bench alert {rng.randrange(300)} is firing",
                severity=severities[i % 4],
                status=status,
                dedup_key=key,
                opened_at=opened,
                acknowledged_at=acknowledged_at,
                resolved_at=resolved_at,
                escalation_level=1,
                escalation_step=1,
            )
        )
    Incident.objects.bulk_create(incidents, batch_size=BATCH)

    events: list[TimelineEvent] = []
    pages: list[Page] = []

    def flush(force: bool = False) -> None:
        if force or len(events) >= BATCH:
            TimelineEvent.objects.bulk_create(events, batch_size=BATCH)
            events.clear()
        if force or len(pages) >= BATCH:
            Page.objects.bulk_create(pages, batch_size=BATCH)
            pages.clear()

    def paged(incident: Incident, person: User, *, level: int, at: datetime) -> None:
        events.append(
            TimelineEvent(
                incident=incident,
                kind=EventKind.PAGED,
                message=f"Paged {person.username} (level {level})",
                data={"level": level, "paged": [person.username]},
                created_at=at,
            )
        )
        for method in methods[person.pk]:
            pages.append(
                Page(
                    incident=incident,
                    user=person,
                    contact_method=method,
                    channel="json",
                    level=level,
                    step=level,
                    status=PageStatus.SENT,
                    due_at=at,
                    sent_at=at,
                )
            )

    for incident in incidents:
        at = incident.opened_at
        events.append(TimelineEvent(incident=incident, kind=EventKind.OPENED, created_at=at))
        paged(incident, rng.choice(people), level=1, at=at)
        if rng.random() < 0.1:
            later = at + timedelta(minutes=5)
            events.append(
                TimelineEvent(
                    incident=incident,
                    kind=EventKind.ESCALATED,
                    message="Escalated to level 2 (nobody acknowledged in time)",
                    data={"level": 2, "cycle": 0, "reason": "timeout"},
                    created_at=later,
                )
            )
            paged(incident, rng.choice(people), level=2, at=later)
        if incident.dedup_key:
            for _ in range(rng.randrange(3)):
                events.append(
                    TimelineEvent(
                        incident=incident,
                        kind=EventKind.ALERT,
                        created_at=at + timedelta(minutes=1),
                    )
                )
        if incident.acknowledged_at:
            events.append(
                TimelineEvent(
                    incident=incident,
                    kind=EventKind.ACKNOWLEDGED,
                    created_at=incident.acknowledged_at,
                )
            )
        if incident.resolved_at:
            events.append(
                TimelineEvent(
                    incident=incident, kind=EventKind.RESOLVED, created_at=incident.resolved_at
                )
            )
        flush()
    flush(force=True)
    # created_at is set on insert (auto_now_add): put each page at its time.
    Page.objects.update(created_at=F("due_at"))
    # The steady state autovacuum keeps live tables in.
    with connection.cursor() as cursor:
        for table in ("incidents_incident", "incidents_timelineevent", "paging_page"):
            cursor.execute(f"VACUUM ANALYZE {table}")


def forget_everything() -> None:
    """What the process remembers of the roll-ups, if this code has any."""
    try:
        from insights import rolled
    except ImportError:  # the code before the roll-ups
        return
    remembered = getattr(rolled, "_REMEMBERED", None)
    if remembered is not None:
        remembered.clear()


def measure(
    client: Any, path: str, headers: dict[str, str], forget: Callable[[], Any]
) -> tuple[int, list[float], list[float], list[float], list[float], list[float]]:
    """SQL queries of one cold request and the in-process cold requests with
    nothing remembered (wall and CPU), then cold and cached latencies through
    gunicorn."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    forget()
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path, headers=headers).status_code == 200
    coldest, coldest_cpu = [], []
    for _ in range(COLDEST):
        forget()
        forget_everything()
        started, cpu = time.perf_counter(), time.process_time()
        assert client.get(path, headers=headers).status_code == 200
        coldest.append(time.perf_counter() - started)
        coldest_cpu.append(time.process_time() - cpu)
    process, base = start_gunicorn()
    try:
        parts = urlsplit(base)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)

        def get() -> float:
            started = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200 or b"incidents" not in body:
                raise RuntimeError(f"{path} answered {response.status}")
            return elapsed

        for _ in range(WARM_UP):  # both workers: connections, imports, templates
            forget()
            get()
        # This machine's speed now: a request that does nothing, on the same
        # gunicorn, connection and client.
        noop = []
        for _ in range(CACHED):
            started = time.perf_counter()
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            noop.append(time.perf_counter() - started)
        cold = []
        for _ in range(COLD):
            forget()
            cold.append(get())
        get()
        cached = [get() for _ in range(CACHED)]
        conn.close()
    finally:
        stop(process)
    return len(queries), cold, cached, noop, coldest, coldest_cpu


def run(n: int = 100_000) -> list[Figure]:
    setup_django()
    from django.contrib.auth.models import User
    from django.core.cache import cache
    from django.test import Client
    from django.utils import timezone

    from accounts.tokens import create_api_token
    from incidents.models import Incident, Service
    from insights.cache import key

    started = time.perf_counter()
    # INSIGHTS_BENCH_KEEP=1 measures again on what an earlier run filled.
    if not (os.environ.get("INSIGHTS_BENCH_KEEP") and Incident.objects.count() == n):
        fill(n, now=timezone.now())
    filled = time.perf_counter() - started
    user, _ = User.objects.get_or_create(username="bench")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    session = {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}
    token = {"Authorization": f"Bearer {create_api_token(user=user, name='b', scope='read').raw}"}
    one = Service.objects.get(slug="bench-0")

    figures = [Figure(f"insights: {n:,} incidents filled (or found) in", filled, "s", "-")]
    try:
        from insights.rollups import refresh
    except ImportError:  # the code before the roll-ups: nothing to roll
        pass
    else:
        started = time.perf_counter()
        refresh()  # what Celery beat does: roll up every closed day, warm the cache
        figures.append(
            Figure(
                "  roll-up of the 89 closed days (beat)", time.perf_counter() - started, "s", "-"
            )
        )
    for label, path, headers, entry in [
        ("/insights, 90 days, all services", "/insights?days=90", session, key(90, None)),
        ("/insights, 30 days (the default)", "/insights", session, key(30, None)),
        (
            "/insights, 90 days, one service",
            "/insights?days=90&service=bench-0",
            session,
            key(90, one),
        ),
        ("/v1/insights, 90 days", "/v1/insights?days=90", token, key(90, None)),
    ]:
        queries, cold, cached, noop, coldest, coldest_cpu = measure(
            client, path, headers, lambda entry=entry: cache.delete(entry)
        )
        cold_p50, cold_p99, _ = summary_ms(cold)
        cached_p50, cached_p99, _ = summary_ms(cached)
        noop_p50, _, _ = summary_ms(noop)
        figures += [
            Figure(f"{label}: SQL queries (cold)", queries, "queries", "constant"),
            Figure("  in-process cold, nothing remembered: p50", summary_ms(coldest)[0], "ms", "-"),
            Figure("  the same, CPU p50", summary_ms(coldest_cpu)[0], "ms", "-"),
            Figure("  cold p50", cold_p50, "ms", "-"),
            Figure("  cold p99", cold_p99, "ms", "<= 200 ms", cold_p99 <= 200),
            Figure("  cached p50", cached_p50, "ms", "-"),
            Figure("  cached p99", cached_p99, "ms", "<= 20 ms", cached_p99 <= 20),
            Figure("  no-op GET /healthz p50, same run", noop_p50, "ms", "-"),
        ]
    return figures


if __name__ == "__main__":
    print_table("insights", run(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
