"""Events API v2 ingest through gunicorn, beside PostgreSQL's raw rate.

1. Raw rate: pgbench runs the equivalent transaction — insert an incident row
   and a timeline row — against the same server, with as many clients as the
   HTTP test has threads.
2. Maximum throughput: CLIENTS threads send `trigger` events as fast as
   gunicorn answers (keep-alive connections), half with a new dedup key
   (a new incident) and half repeating one of a few keys (a timeline row on
   an open incident).
3. The ceiling of the web tier itself: GET /healthz, which does no I/O,
   through the same gunicorn, middleware and client. On a 2-core machine
   where PostgreSQL, Redis, gunicorn and the client share the cores, this
   no-op rate is the bound any endpoint is measured against.
4. Latency at about half the maximum throughput: the same mix sent on a fixed
   schedule (open loop); latency counts from the scheduled send time, so
   queueing behind a slow request is included.
5. One repeat, alone: the CPU Python spends on it (and on a new incident)
   in this process (Django's WSGI handler called directly, every
   middleware, no HTTP), its wall time
   through gunicorn with one client, both beside the no-op GET /healthz
   measured the same way in the same run, and the SQL statements Django
   sends for a repeat and for a new incident (the key look-up included
   when it is sent: a key this process has seen is cached, ``keys.admit``;
   ``BEGIN``, ``COMMIT`` and savepoints not), with the transactions each
   opens (a statement outside one is its own, autocommitted).

    python -m triage.devstack bench bench/ingest.py
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from common import (
    Figure,
    print_table,
    setup_django,
    start_gunicorn,
    stop,
    summary_ms,
    worker_rss_mb,
)

CLIENTS = 8
SERIAL = 1500  # requests per in-process and serial measurement
WORKERS, THREADS = (
    int(os.environ.get("BENCH_WORKERS", "2")),
    int(os.environ.get("BENCH_THREADS", "4")),
)
SECONDS = 10.0
REPEAT_KEYS = 50
MAX_REQUESTS = 200_000  # a hard bound on what one phase may send


def _pgbench() -> Path:
    import pgserver

    return Path(pgserver.__file__).parent / "pginstall" / "bin" / "pgbench"


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (dict, list)):
        value = json.dumps(value)
    return "'" + str(value).replace("'", "''") + "'"


def _row_sql(model: Any, values: dict[str, str]) -> str:
    """An INSERT for the model's table: the given values, defaults for the rest.

    Built from the model so it follows schema changes (fields added later).
    """
    columns = dict(values)
    for field in model._meta.concrete_fields:
        if field.primary_key or field.column in columns or field.null:
            continue
        columns[field.column] = _literal(field.get_default())
    names = ", ".join(columns)
    values = ", ".join(columns.values())
    # A pgbench script from the model's own metadata and constants: no input.
    return f"INSERT INTO {model._meta.db_table} ({names}) VALUES ({values})"  # noqa: S608


def raw_rate(service_id: int, clients: int, seconds: float) -> float:
    """pgbench transactions per second: one incident row plus one timeline row."""
    from incidents.models import Incident, TimelineEvent

    incident = _row_sql(
        Incident,
        {
            "title": "'pgbench'",
            "service_id": str(service_id),
            "severity": "'critical'",
            "status": "'triggered'",
            "source": "'events_v2'",
            "dedup_key": "'pgbench-' || :n",
            "opened_at": "now()",
            "updated_at": "now()",
        },
    )
    event = _row_sql(
        TimelineEvent,
        {"incident_id": ":id", "kind": "'opened'", "created_at": "now()", "data": "'{}'"},
    )
    script = "\n".join(
        [
            r"\set n random(1, 1000000000000)",
            "BEGIN;",
            f"{incident} RETURNING id \\gset",
            f"{event};",
            "END;",
            "",
        ]
    )
    url = urlsplit(os.environ["DATABASE_URL"])
    query = parse_qs(url.query)
    host = query.get("host", [url.hostname or ""])[0]
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
        handle.write(script)
    try:
        result = subprocess.run(
            [
                str(_pgbench()),
                "-n",
                "-h",
                host,
                *(["-p", str(url.port)] if url.port else []),
                "-U",
                unquote(url.username or "postgres"),
                "-c",
                str(clients),
                "-j",
                str(min(clients, 2)),
                "-T",
                str(int(seconds)),
                "-f",
                handle.name,
                unquote(url.path.lstrip("/") or "postgres"),
            ],
            env={**os.environ, "PGPASSWORD": unquote(url.password or "")},
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(handle.name)
    found = re.search(r"tps = ([0-9.]+)", result.stdout)
    if not found:
        raise RuntimeError(f"pgbench printed no rate:\n{result.stdout}\n{result.stderr}")
    return float(found.group(1))


def setup() -> tuple[int, str]:
    setup_django()
    from incidents.models import Service
    from integrations.keys import create_integration

    # Half the events open new incidents, thousands a minute: storm protection
    # would fold them into one storm, so it is off here (bench/storm.py
    # measures storms).
    service, _ = Service.objects.get_or_create(
        slug="bench-ingest", defaults={"name": "Ingest", "storm_threshold": 0}
    )
    created = create_integration(
        service=service, kind="events_v2", name="bench", rate_limit_per_minute=10**9
    )
    return service.pk, created.raw


class Sender:
    """One keep-alive connection; alternates new and repeated dedup keys
    (only repeats with ``new_keys=False``)."""

    def __init__(self, base: str, key: str, index: int, *, new_keys: bool = True) -> None:
        parts = urlsplit(base)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.key = key
        self.index = index
        self.new_keys = new_keys
        self.sent = 0

    def body(self) -> bytes:
        self.sent += 1
        if self.new_keys and self.sent % 2:
            dedup = uuid.uuid4().hex
        else:
            dedup = f"repeat-{(self.index * 7 + self.sent) % REPEAT_KEYS}"
        event = {
            "routing_key": self.key,
            "event_action": "trigger",
            "dedup_key": dedup,
            "payload": {"summary": f"bench {dedup}", "source": "bench", "severity": "error"},
        }
        return json.dumps(event).encode()

    def send(self) -> None:
        self.conn.request(
            "POST",
            "/integrations/v2/enqueue",
            body=self.body(),
            headers={"Content-Type": "application/json"},
        )
        response = self.conn.getresponse()
        response.read()
        if response.status != 202:
            raise RuntimeError(f"enqueue answered {response.status}")

    def close(self) -> None:
        self.conn.close()


class NoopSender:
    """GET /healthz (no I/O at all) on one keep-alive connection."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)

    def send(self) -> None:
        self.conn.request("GET", "/healthz")
        response = self.conn.getresponse()
        response.read()

    def close(self) -> None:
        self.conn.close()


def _in_threads(work: Callable[[int], None]) -> None:
    """Run ``work(index)`` for every client index, each in a thread, and wait."""
    threads = [threading.Thread(target=work, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def closed_loop(make_sender: Callable[[int], Sender | NoopSender], seconds: float) -> float:
    """Requests per second with CLIENTS threads sending back to back."""
    counts = [0] * CLIENTS
    deadline = time.monotonic() + seconds

    def work(index: int) -> None:
        sender = make_sender(index)
        try:
            while time.monotonic() < deadline and counts[index] < MAX_REQUESTS // CLIENTS:
                sender.send()
                counts[index] += 1
        finally:
            sender.close()

    started = time.monotonic()
    _in_threads(work)
    return sum(counts) / (time.monotonic() - started)


def open_loop(base: str, key: str, rate: float, seconds: float) -> tuple[list[float], float]:
    """Latencies (s) of events sent on a fixed schedule of `rate` per second."""
    per_thread = rate / CLIENTS
    total = min(int(per_thread * seconds), MAX_REQUESTS // CLIENTS)
    samples: list[list[float]] = [[] for _ in range(CLIENTS)]
    start = time.monotonic() + 0.2

    def work(index: int) -> None:
        sender = Sender(base, key, index)
        offset = index / rate  # spread the threads' schedules evenly
        try:
            for i in range(total):
                due = start + offset + i / per_thread
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                sender.send()
                samples[index].append(time.monotonic() - due)
        finally:
            sender.close()

    _in_threads(work)
    flat = [sample for chunk in samples for sample in chunk]
    return flat, len(flat) / (time.monotonic() - start)


def _environ(method: str, path: str, body: bytes = b"") -> dict[str, Any]:
    import io

    from django.conf import settings

    hosts = [host for host in settings.ALLOWED_HOSTS if host not in ("*", "")]
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": hosts[0].lstrip(".") if hosts else "localhost",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
    }


def _event(key: str, dedup: str) -> bytes:
    payload = {"summary": f"bench {dedup}", "source": "bench", "severity": "error"}
    body = {"routing_key": key, "event_action": "trigger", "dedup_key": dedup, "payload": payload}
    return json.dumps(body).encode()


def _call(app: Any, environ: dict[str, Any], expect: int) -> None:
    answered: list[str] = []
    chunks = app(environ, lambda status, headers, exc=None: answered.append(status))
    b"".join(chunks)
    if hasattr(chunks, "close"):
        chunks.close()
    if not answered[0].startswith(str(expect)):
        raise RuntimeError(f"{environ['PATH_INFO']} answered {answered[0]}")


def _cpu_ms(app: Any, make: Callable[[], dict[str, Any]], expect: int) -> float:
    """Process CPU per request, in ms, over SERIAL requests (after a warm-up)."""
    for _ in range(50):
        _call(app, make(), expect)
    started = time.process_time()
    for _ in range(SERIAL):
        _call(app, make(), expect)
    return (time.process_time() - started) / SERIAL * 1000


def _statements(app: Any, environ: dict[str, Any]) -> tuple[int, int]:
    """(SQL statements, transactions) of one request. Django logs ``BEGIN``
    and ``COMMIT`` beside the statements; they are counted apart."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        _call(app, environ, 202)
    sent = [query["sql"].strip().upper() for query in queries.captured_queries]
    control = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")
    statements = [sql for sql in sent if not sql.startswith(control)]
    return len(statements), sent.count("BEGIN")


def in_process(key: str) -> tuple[float, float, float, tuple[int, int], tuple[int, int]]:
    """(CPU ms per repeat, per no-op, per new incident, (statements,
    transactions) per repeat and per new incident)."""
    from django.core.handlers.wsgi import WSGIHandler

    app = WSGIHandler()
    path = "/integrations/v2/enqueue"
    _call(app, _environ("POST", path, _event(key, "serial")), 202)  # opens it
    repeat = _cpu_ms(app, lambda: _environ("POST", path, _event(key, "serial")), 202)
    noop = _cpu_ms(app, lambda: _environ("GET", "/healthz"), 200)
    new = _cpu_ms(app, lambda: _environ("POST", path, _event(key, uuid.uuid4().hex)), 202)
    repeat_statements = _statements(app, _environ("POST", path, _event(key, "serial")))
    new_statements = _statements(app, _environ("POST", path, _event(key, uuid.uuid4().hex)))
    return repeat, noop, new, repeat_statements, new_statements


def serial_wall_ms(base: str, key: str) -> tuple[float, float]:
    """Wall ms per request with one client on one keep-alive connection: a
    repeat, and the no-op GET /healthz."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    body = _event(key, "serial")
    headers = {"Content-Type": "application/json"}

    def timed(send: Callable[[], None]) -> float:
        for _ in range(50):
            send()
        started = time.perf_counter()
        for _ in range(SERIAL):
            send()
        return (time.perf_counter() - started) / SERIAL * 1000

    def repeat() -> None:
        conn.request("POST", "/integrations/v2/enqueue", body=body, headers=headers)
        conn.getresponse().read()

    def noop() -> None:
        conn.request("GET", "/healthz")
        conn.getresponse().read()

    try:
        # Alternated, twice, so a burst of load elsewhere weighs on both.
        walls = [timed(repeat), timed(noop), timed(repeat), timed(noop)]
    finally:
        conn.close()
    return min(walls[0], walls[2]), min(walls[1], walls[3])


def run() -> list[Figure]:
    service_id, key = setup()
    cpu_repeat, cpu_noop, cpu_new, repeat_statements, new_statements = in_process(key)
    raw = raw_rate(service_id, CLIENTS, SECONDS)
    process, base = start_gunicorn(workers=WORKERS, threads=THREADS)
    try:
        wall_repeat, wall_noop = serial_wall_ms(base, key)

        def events(index: int) -> Sender:
            return Sender(base, key, index)

        closed_loop(events, 2.0)  # warm up: connections, caches, code paths
        # The ceiling of the web tier: the same gunicorn, middleware and client.
        noop = closed_loop(lambda _: NoopSender(base), SECONDS / 2)
        maximum = closed_loop(events, SECONDS)
        # What the half of the mix that repeats reaches on its own.
        repeats = closed_loop(lambda index: Sender(base, key, index, new_keys=False), SECONDS / 2)
        latencies, achieved = open_loop(base, key, maximum / 2, SECONDS)
        rss = worker_rss_mb(process.pid)
    finally:
        stop(process)
    p50, p99, worst = summary_ms(latencies)
    share = maximum / noop * 100
    ratio = wall_repeat / wall_noop
    return [
        Figure(
            "Events v2 repeat: in-process CPU per request",
            cpu_repeat,
            "ms",
            "<= 1.0 ms",
            cpu_repeat <= 1.0,
        ),
        Figure("no-op GET /healthz: in-process CPU per request", cpu_noop, "ms", "-"),
        Figure("Events v2 new incident: in-process CPU per request", cpu_new, "ms", "-"),
        Figure("Events v2 repeat: serial wall per request (1 client)", wall_repeat, "ms", "-"),
        Figure("no-op GET /healthz: serial wall per request", wall_noop, "ms", "-"),
        Figure("Events v2 repeat: serial wall / no-op wall", ratio, "x", "<= 5 x", ratio <= 5),
        Figure(
            "SQL statements per repeat (key look-up if sent)",
            repeat_statements[0],
            "",
            "1 + key look-up",
            repeat_statements[0] <= 2,
        ),
        Figure("transactions (BEGIN ... COMMIT) per repeat", repeat_statements[1], "", "0"),
        Figure("SQL statements per new incident (key look-up if sent)", new_statements[0], "", "-"),
        Figure(
            "transactions (BEGIN ... COMMIT) per new incident",
            new_statements[1],
            "",
            "<= 1",
            new_statements[1] <= 1,
        ),
        Figure(f"pgbench: incident + timeline row ({CLIENTS} clients)", raw, "tx/s", "-"),
        Figure(
            f"Events v2 trigger, max ({CLIENTS} clients, half new keys)", maximum, "events/s", "-"
        ),
        Figure("Events v2 ingest as a share of raw PostgreSQL", maximum / raw * 100, "%", "-"),
        Figure(f"no-op GET /healthz, same gunicorn ({CLIENTS} clients)", noop, "req/s", "-"),
        Figure("no-op request as a share of raw PostgreSQL", noop / raw * 100, "%", "-"),
        Figure("Events v2 ingest as a share of the no-op rate", share, "%", ">= 40 %", share >= 40),
        Figure(
            "  the mix's CPU bound: no-op CPU / mean CPU of a repeat and a new incident",
            cpu_noop / ((cpu_repeat + cpu_new) / 2) * 100,
            "%",
            "-",
        ),
        Figure(
            f"  repeats only, max ({CLIENTS} clients): share of the no-op rate",
            repeats / noop * 100,
            "%",
            f"{repeats:,.0f} events/s",
        ),
        Figure(f"latency p50 at {achieved:,.0f} events/s (half max)", p50, "ms", "-"),
        Figure(
            f"latency p99 at {achieved:,.0f} events/s (half max)", p99, "ms", "<= 50 ms", p99 <= 50
        ),
        Figure("latency worst at half max", worst, "ms", "-"),
        Figure("RSS of one web worker after the runs", rss, "MB", "<= 300 MB", rss <= 300),
    ]


if __name__ == "__main__":
    print_table("ingest", run())
