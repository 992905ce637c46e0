"""Dashboard latency and SQL queries with many open incidents.

Fills N open incidents (default 10,000) across 20 services, then measures, as
logged-in responders:

- a full render: `GET /` through gunicorn (2 workers), p50/p99 over
  sequential requests on a keep-alive connection, interleaved: with the
  cached list retired before every request (the read model's version
  bumped, as a change would), with the list cached (between changes), and
  the no-op `GET /healthz` through the same stack as the yardstick; and the
  SQL queries one full render after a change to an incident runs
  (in-process; the settings the rows show were read by the request before);
- the same renders' CPU time in-process (Django's test client through every
  middleware, ``time.process_time``): steadier than latency on a shared
  machine, so two trees measured back to back compare by it;
- an unchanged poll: the list's htmx refresh with the ETag of the previous
  answer, which is a 304. Server time is measured in-process (Django's
  test client through every middleware), the round trip through gunicorn;
  its queries are counted in-process with the session in the cache
  (Django's cached_db engine, as deployed once sessions move to it);
- twenty responders polling: 20 people, each polling 12 times (a minute
  at every 5 s), no change in between: the PostgreSQL queries besides each
  request's user.

    python -m triage.devstack bench bench/dashboard.py [N]
"""

from __future__ import annotations

import http.client
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from common import Figure, print_table, setup_django, start_gunicorn, stop, summary_ms

REQUESTS = 400
CPU_REQUESTS = 200  # in-process renders timed by CPU clock, each kind
POLLERS, POLLS = 20, 12
REFRESH = {"HX-Request": "true", "HX-Target": "incident-list"}
USER_QUERY = re.compile(r'FROM "?auth_user"? WHERE')  # the logged-in user, by id
CACHED_SESSIONS = "django.contrib.sessions.backends.cached_db"


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


@contextmanager
def counting() -> Iterator[list[str]]:
    """The SQL statements run in this process meanwhile (an execute wrapper:
    unlike the debug log, it cannot fill up)."""
    from django.db import connection

    seen: list[str] = []

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield seen


def full_render(client: Any) -> tuple[int, dict[str, list[float]], dict[str, list[float]]]:
    """Queries of one full render (in-process), CPU time per render
    in-process, and latencies through gunicorn, interleaved: the page with
    the cached list retired before each request ("changed", as after any
    change), the page with the list cached ("cached", between changes) and
    (through gunicorn) the no-op ``GET /healthz`` through the same stack,
    the yardstick the others are read against."""
    from triage import readmodel

    # A change to an incident, not to the settings rows show (escalation
    # levels, maintenance windows, services): those are read once per change
    # to them (triage.readmodel.settings_cached), by the request before.
    assert client.get("/").status_code == 200
    readmodel.bump()
    with counting() as queries:
        assert client.get("/").status_code == 200
    cpu: dict[str, list[float]] = {"changed": [], "cached": []}
    for i in range(CPU_REQUESTS + 10):
        for kind in cpu:
            if kind == "changed":
                readmodel.bump()
            started = time.process_time()
            assert client.get("/").status_code == 200
            if i >= 10:
                cpu[kind].append(time.process_time() - started)
    process, base = start_gunicorn()
    samples: dict[str, list[float]] = {"changed": [], "cached": [], "healthz": []}
    try:
        parts = urlsplit(base)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        headers = {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}
        for i in range(REQUESTS + 30):
            for kind in samples:
                if kind == "changed":
                    readmodel.bump()  # as a change would: the cached list is not used
                started = time.perf_counter()
                conn.request("GET", "/healthz" if kind == "healthz" else "/", headers=headers)
                response = conn.getresponse()
                body = response.read()
                elapsed = time.perf_counter() - started
                if response.status != 200 or (kind != "healthz" and b"incident-list" not in body):
                    raise RuntimeError(f"{kind} answered {response.status}")
                if i >= 30:  # the first requests warm up connections and caches
                    samples[kind].append(elapsed)
        conn.close()
    finally:
        stop(process)
    return len(queries), cpu, samples


def _queries_besides_user(captured: list[str]) -> int:
    return sum(1 for sql in captured if not USER_QUERY.search(sql))


def unchanged_poll(
    client: Any,
) -> tuple[int, int, list[float], list[float], list[float], list[float]]:
    """An unchanged poll: (its queries, those besides the user, server times
    in-process, their CPU times, round trips through gunicorn, and the no-op
    ``GET /healthz``'s server times in-process, each sent right after a poll:
    the yardstick for the poll's p99 in the same minute)."""
    first = client.get("/", headers=REFRESH)
    etag = first["ETag"]
    conditional = {**REFRESH, "If-None-Match": etag}
    with counting() as queries:
        assert client.get("/", headers=conditional).status_code == 304
    server, cpu, noop = [], [], []
    for i in range(REQUESTS + 30):
        started, cpu_started = time.perf_counter(), time.process_time()
        response = client.get("/", headers=conditional)
        elapsed = time.perf_counter() - started
        cpu_elapsed = time.process_time() - cpu_started
        if response.status_code != 304:
            raise RuntimeError(f"an unchanged poll answered {response.status_code}")
        noop_started = time.perf_counter()
        client.get("/healthz")
        noop_elapsed = time.perf_counter() - noop_started
        if i >= 30:
            server.append(elapsed)
            cpu.append(cpu_elapsed)
            noop.append(noop_elapsed)
    process, base = start_gunicorn()
    try:
        parts = urlsplit(base)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        headers = {"Cookie": f"sessionid={client.cookies['sessionid'].value}", **conditional}
        trips = []
        for i in range(REQUESTS + 30):
            started = time.perf_counter()
            conn.request("GET", "/", headers=headers)
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            if response.status != 304:
                raise RuntimeError(f"an unchanged poll answered {response.status}")
            if i >= 30:
                trips.append(elapsed)
        conn.close()
    finally:
        stop(process)
    return len(queries), _queries_besides_user(queries), server, cpu, trips, noop


def responders_polling() -> tuple[int, int]:
    """Twenty responders polling with no change in between: (requests, queries
    besides each request's user). Each keeps the ETag its browser got."""
    from django.contrib.auth.models import User
    from django.test import Client

    clients = []
    for n in range(POLLERS):
        person, _ = User.objects.get_or_create(username=f"responder-{n}")
        client = Client(HTTP_HOST="localhost")
        client.force_login(person)
        clients.append(client)
    etags = {n: client.get("/", headers=REFRESH)["ETag"] for n, client in enumerate(clients)}
    requests = 0
    with counting() as queries:
        for _ in range(POLLS):
            for n, client in enumerate(clients):
                response = client.get("/", headers={**REFRESH, "If-None-Match": etags[n]})
                requests += 1
                if response.status_code != 304:
                    raise RuntimeError(f"responder {n} got {response.status_code}")
    return requests, _queries_besides_user(queries)


def run(n: int = 10_000) -> list[Figure]:
    setup_django()
    from django.contrib.auth.models import User
    from django.test import Client, override_settings

    fill(n)
    user, _ = User.objects.get_or_create(username="bench")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    query_count, cpu, rendered = full_render(client)
    cpu_p50, cpu_p99, _ = summary_ms(cpu["changed"])
    cpu_cached_p50, cpu_cached_p99, _ = summary_ms(cpu["cached"])
    p50, p99, worst = summary_ms(rendered["changed"])
    cached_p50, cached_p99, _ = summary_ms(rendered["cached"])
    noop_p50, noop_p99, _ = summary_ms(rendered["healthz"])
    with override_settings(SESSION_ENGINE=CACHED_SESSIONS):
        cached = Client(HTTP_HOST="localhost")
        cached.force_login(user)
        poll_queries, poll_others, poll_server, poll_cpu, poll_trips, poll_noop = unchanged_poll(
            cached
        )
        requests, polling_queries = responders_polling()
    poll_p50, poll_p99, _ = summary_ms(poll_server)
    poll_cpu_p50, poll_cpu_p99, _ = summary_ms(poll_cpu)
    trip_p50, trip_p99, _ = summary_ms(poll_trips)
    noop_server_p50, noop_server_p99, _ = summary_ms(poll_noop)
    page_first_rows()
    paged_queries, paged_cpu, paged = full_render(client)
    paged_cpu_p50, paged_cpu_p99, _ = summary_ms(paged_cpu["changed"])
    paged_p50, paged_p99, _ = summary_ms(paged["changed"])
    paged_cached_p50, paged_cached_p99, _ = summary_ms(paged["cached"])
    return [
        Figure(
            "no-op GET /healthz p50 / p99, same gunicorn", noop_p50, "ms", f"p99 {noop_p99:.2f} ms"
        ),
        Figure(f"full render GET / p50 ({n:,} open), after a change", p50, "ms", "-"),
        Figure(
            f"full render GET / p99 ({n:,} open), after a change", p99, "ms", "<= 25 ms", p99 <= 25
        ),
        Figure("full render GET / worst, after a change", worst, "ms", "-"),
        Figure("full render GET / p50, list cached", cached_p50, "ms", "-"),
        Figure(
            "full render GET / p99, list cached", cached_p99, "ms", "<= 25 ms", cached_p99 <= 25
        ),
        Figure("full render p50, after a change / healthz", p50 / noop_p50, "x", "-"),
        Figure(
            "  in-process CPU p50 / p99, after a change", cpu_p50, "ms", f"p99 {cpu_p99:.2f} ms"
        ),
        Figure(
            "  in-process CPU p50 / p99, list cached",
            cpu_cached_p50,
            "ms",
            f"p99 {cpu_cached_p99:.2f} ms",
        ),
        Figure(
            "full render SQL queries per request",
            query_count,
            "queries",
            "constant, <= 8",
            query_count <= 8,
        ),
        # The same with the first page's rows paged: who was paged and how it
        # went, and who is next (tests/test_reach.py holds the count constant).
        Figure("  first page paged: p50", paged_p50, "ms", "-"),
        Figure("  first page paged: p99", paged_p99, "ms", "<= 25 ms", paged_p99 <= 25),
        Figure("  first page paged, list cached: p50", paged_cached_p50, "ms", "-"),
        Figure(
            "  first page paged, list cached: p99",
            paged_cached_p99,
            "ms",
            "<= 25 ms",
            paged_cached_p99 <= 25,
        ),
        Figure(
            "  first page paged: in-process CPU p50 / p99",
            paged_cpu_p50,
            "ms",
            f"p99 {paged_cpu_p99:.2f} ms",
        ),
        Figure("  first page paged: SQL queries per request", paged_queries, "queries", "-"),
        Figure("unchanged poll (304) server time p50", poll_p50, "ms", "-"),
        Figure("unchanged poll (304) server time p99", poll_p99, "ms", "<= 3 ms", poll_p99 <= 3),
        Figure(
            "  no-op GET /healthz server time p50 / p99, in-process, same loop",
            noop_server_p50,
            "ms",
            f"p99 {noop_server_p99:.2f} ms",
        ),
        Figure(
            "unchanged poll (304) CPU p50 / p99, in-process",
            poll_cpu_p50,
            "ms",
            f"p99 {poll_cpu_p99:.2f} ms",
        ),
        Figure("unchanged poll (304) round trip p50, gunicorn", trip_p50, "ms", "-"),
        Figure("unchanged poll (304) round trip p99, gunicorn", trip_p99, "ms", "-"),
        Figure(
            "unchanged poll PostgreSQL queries (session cached)",
            poll_queries,
            "queries",
            "<= 1 (the user)",
            poll_queries <= 1 and poll_others == 0,
        ),
        Figure(
            f"{POLLERS} responders x {POLLS} polls: queries besides the user",
            polling_queries,
            f"/{requests} req",
            "0",
            polling_queries == 0,
        ),
    ]


if __name__ == "__main__":
    print_table("dashboard", run(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
