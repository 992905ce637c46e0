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


def run(n: int = 10_000) -> list[Figure]:
    setup_django()
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    fill(n)
    user, _ = User.objects.get_or_create(username="bench")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/").status_code == 200
    query_count = len(queries)

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
    p50, p99, worst = summary_ms(samples)
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
    ]


if __name__ == "__main__":
    print_table("dashboard", run(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
