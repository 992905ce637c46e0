"""Dashboard latency and SQL queries per request with many open incidents.

Fills N open incidents (default 10,000) across 20 services, then measures
`GET /` through gunicorn (2 workers) as a logged-in responder: p50/p99 over
sequential requests on a keep-alive connection, and the number of SQL queries
one request runs (counted in-process with the same view).

    python -m triage.devstack bench bench/dashboard.py [N]
"""

from __future__ import annotations

import http.client
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from common import Figure, print_table, setup_django, start_gunicorn, stop, summary_ms

REQUESTS = 400


def fill(n: int) -> None:
    from incidents.models import Incident, Service

    Incident.objects.all().delete()
    services = [
        Service.objects.get_or_create(slug=f"bench-{i}", defaults={"name": f"Bench {i}"})[0]
        for i in range(20)
    ]
    severities = ["critical", "error", "warning", "info"]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    Incident.objects.bulk_create(
        (
            Incident(
                service=services[i % 20],
                title=f"Bench incident {i}: something is slow",
                severity=severities[i % 4],
                status="acknowledged" if i % 5 == 0 else "triggered",
                acknowledged_at=start if i % 5 == 0 else None,
                opened_at=start + timedelta(seconds=i),
            )
            for i in range(n)
        ),
        batch_size=2000,
    )
    from django.db import connection

    # The steady state autovacuum keeps a live table in: statistics and the
    # visibility map current.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE incidents_incident")


def page_first_rows(rows: int = 25) -> None:
    """Page the incidents on the dashboard's first page through the real
    engine (no worker: their pages stay queued), so the rows show delivery
    states and what happens next: level 1 pages ana (a contact method) and cy
    (none), level 2 bob."""
    from django.contrib.auth.models import User

    from incidents.models import Incident, Service
    from paging import escalation
    from paging.models import ContactMethod, EscalationLevel, EscalationPolicy

    ana, cy, bob = (User.objects.get_or_create(username=name)[0] for name in ("ana", "cy", "bob"))
    ContactMethod.objects.get_or_create(user=ana, name="phone", url="json://203.0.113.7/hook")
    policy = EscalationPolicy.objects.create(name="Bench policy")
    for position, people in enumerate(([ana, cy], [bob])):
        level = EscalationLevel.objects.create(policy=policy, position=position, delay_minutes=5)
        level.users.set(people)
    Service.objects.update(escalation_policy=policy)
    first = Incident.objects.filter(severity="critical", status="triggered").order_by("opened_at")
    for pk in first.values_list("pk", flat=True)[:rows]:
        escalation.start(pk)


def measure(client: Any) -> tuple[int, list[float]]:
    """Queries one request runs (in-process), and request latencies through gunicorn."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert client.get("/").status_code == 200
    process, base = start_gunicorn()
    try:
        parts = urlsplit(base)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        headers = {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}
        samples = []
        for i in range(REQUESTS + 30):
            started = time.perf_counter()
            conn.request("GET", "/", headers=headers)
            response = conn.getresponse()
            body = response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200 or b"incident-list" not in body:
                raise RuntimeError(f"dashboard answered {response.status}")
            if i >= 30:  # the first requests warm up connections and caches
                samples.append(elapsed)
        conn.close()
    finally:
        stop(process)
    return len(queries), samples


def run(n: int = 10_000) -> list[Figure]:
    setup_django()
    from django.contrib.auth.models import User
    from django.test import Client

    fill(n)
    user, _ = User.objects.get_or_create(username="bench")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    query_count, samples = measure(client)
    p50, p99, worst = summary_ms(samples)
    page_first_rows()
    paged_queries, paged_samples = measure(client)
    paged_p50, paged_p99, _ = summary_ms(paged_samples)
    return [
        Figure(f"dashboard GET / p50 ({n:,} open incidents)", p50, "ms", "-"),
        Figure(f"dashboard GET / p99 ({n:,} open incidents)", p99, "ms", "<= 25 ms", p99 <= 25),
        Figure("dashboard GET / worst", worst, "ms", "-"),
        Figure(
            "dashboard SQL queries per request",
            query_count,
            "queries",
            "constant, <= 8",
            query_count <= 8,
        ),
        # The same with the first page's rows paged: who was paged and how it
        # went, and who is next (tests/test_reach.py holds the count constant).
        Figure("  first page paged: p50", paged_p50, "ms", "-"),
        Figure("  first page paged: p99", paged_p99, "ms", "<= 25 ms", paged_p99 <= 25),
        Figure("  first page paged: SQL queries per request", paged_queries, "queries", "-"),
    ]


if __name__ == "__main__":
    print_table("dashboard", run(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
