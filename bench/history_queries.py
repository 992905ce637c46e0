"""The dashboard's history queries at 100,000 incidents, with the history
indexes (migration incidents 0012) and without them, back to back.

Runs against the PostgreSQL in DATABASE_URL, not the embedded one: the
title's trigram index needs ``pg_trgm`` (PostgreSQL's contrib modules), which
the embedded server lacks. It fills the database with N incidents (default
100,000; 0.1 % open, 20 services, 400 alert names on 97 hosts, one every
1.3 minutes back from now) when it holds fewer, so give it a throw-away one:

    createdb triage_bench && DATABASE_URL=postgresql://…/triage_bench \\
      REDIS_URL=redis://…/15 SECRET_KEY=x .venv/bin/python manage.py migrate
    DATABASE_URL=… REDIS_URL=… SECRET_KEY=x .venv/bin/python bench/history_queries.py

Each figure is the median of 15 runs of what the view does for page 1: the
count (at most 10,001 for a history) and the 25 rows. "Without" drops the
two indexes inside a transaction that is rolled back.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage.settings")

import django

django.setup()

from django.core.paginator import Paginator  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from incidents import selectors  # noqa: E402
from incidents.models import Incident, Service  # noqa: E402

RUNS = 15

FILL = """
INSERT INTO incidents_incident (title, public_title, details, service_id, severity, status,
  source, dedup_key, request_fingerprint, opened_at, acknowledged_at, resolved_at, updated_at,
  escalation_level, escalation_cycle, escalation_step)
SELECT 'alert-' || (i % 400) || ' firing on host-' || (i % 97), '', '', %(first)s + i % 20,
  (ARRAY['critical', 'error', 'warning', 'info'])[1 + i % 4],
  CASE WHEN i % 1000 = 0 THEN 'triggered' ELSE 'resolved' END, 'api',
  'alert-' || (i % 400) || '-' || i, '',
  now() - i * interval '78 seconds', now() - i * interval '78 seconds' + interval '4 minutes',
  CASE WHEN i % 1000 = 0 THEN NULL
       ELSE now() - i * interval '78 seconds' + interval '1 hour' END,
  now(), 1, 0, 1
FROM generate_series(1, %(n)s) i
"""


def fill(n: int) -> None:
    if Incident.objects.count() >= n:
        return
    services = [
        Service.objects.get_or_create(slug=f"bench-{i}", defaults={"name": f"Bench {i}"})[0]
        for i in range(20)
    ]
    with connection.cursor() as cursor:
        cursor.execute(FILL, {"first": min(s.pk for s in services), "n": n})
        cursor.execute("ANALYZE incidents_incident")


def median_ms(work: Callable[[], Any]) -> float:
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        work()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def first_page(filters: selectors.IncidentFilter) -> None:
    paginator = Paginator(selectors.dashboard_incidents(filters), 25)
    if filters.history:
        paginator.count = selectors.history_count(filters)[0]
    list(paginator.page(1).object_list)


def main() -> None:
    fill(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
    service = Service.objects.get(slug="bench-3")
    month_ago = timezone.localdate() - timedelta(days=30)
    cases = {
        "status=all": selectors.IncidentFilter(status="all"),
        "status=all, q=host-13": selectors.IncidentFilter(status="all", q="host-13"),
        "status=all, q=alert-7-7 (a dedup key)": selectors.IncidentFilter(
            status="all", q="alert-7-7"
        ),
        "status=resolved, a service, a week": selectors.IncidentFilter(
            status="resolved",
            service=service,
            opened_from=month_ago,
            opened_to=month_ago + timedelta(days=6),
        ),
        "open (the default view)": selectors.IncidentFilter(),
    }
    every = selectors.IncidentFilter(status="all")
    print(f"a trivial query (EXISTS): {median_ms(lambda: Incident.objects.exists()):.2f} ms")
    print(
        f"count of status=all: every row {median_ms(lambda: selectors.listed(every).count()):.1f}"
        f" ms, up to 10,001 {median_ms(lambda: selectors.history_count(every)):.1f} ms"
    )
    with_indexes = {name: median_ms(lambda f=f: first_page(f)) for name, f in cases.items()}
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DROP INDEX incident_title_trgm; DROP INDEX incident_dedup_key")
        without = {name: median_ms(lambda f=f: first_page(f)) for name, f in cases.items()}
        transaction.set_rollback(True)
    for name in cases:
        print(
            f"{name:40s} page 1: {with_indexes[name]:7.1f} ms with the indexes,"
            f" {without[name]:7.1f} ms without"
        )


if __name__ == "__main__":
    main()
