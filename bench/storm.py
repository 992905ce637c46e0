"""An alert storm through gunicorn: Events API v2 triggers for many dedup keys
on one service, and the dashboard while it pours in.

1. Storm at full speed: CLIENTS threads send TRIGGERS `trigger` events for
   KEYS dedup keys (each key about five times, in a shuffled order) to one
   service with the default storm settings (20 incidents a minute), back to
   back on keep-alive connections. Every event must be accepted (202); the
   figures are the latency p99 and how many incidents the service opened
   (its first 20 alerts, then one "Alert storm" incident for the rest).
2. The team during a storm: the same storm on a second service, sent on a
   fixed schedule at half the rate phase 1 reached, or at BENCH_STORM_RATE
   events/s (open loop: latency from the scheduled send time), while one
   signed-in responder loads the dashboard (`GET /`, the whole page) back
   to back. The figure is the dashboard's p99, beside the no-op
   `GET /healthz` sent the same way.
3. What one trigger of a storm costs, in this process (no server, no
   client): statements and CPU per request for a repeat of an alert in the
   storm and for a new alert joining it, beside the no-op `GET /healthz`.

    python -m triage.devstack bench bench/storm.py
"""

from __future__ import annotations

import http.client
import json
import os
import random
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from common import Figure, percentile, print_table, setup_django, start_gunicorn, stop

# The in-process request helpers of the ingest benchmark (a WSGI environ, one
# call, an Events v2 body), so both measure a request the same way.
from ingest import _call, _environ, _event

CLIENTS = 8
# The storm; BENCH_STORM_TRIGGERS / BENCH_STORM_KEYS scale it down
# (same five triggers a key) when the machine is too busy to send it all.
TRIGGERS = int(os.environ.get("BENCH_STORM_TRIGGERS", "10000"))
KEYS = int(os.environ.get("BENCH_STORM_KEYS", str(TRIGGERS // 5)))
# Phase 2's rate, events/s; unset: half of what phase 1 reached. Set it to
# compare two versions at the same load (phase 1's maximum differs).
RATE = float(os.environ.get("BENCH_STORM_RATE", "0"))


def _events(seed: int) -> list[str]:
    keys = [f"storm-{n}" for n in range(KEYS)] * max(1, TRIGGERS // KEYS)
    random.Random(seed).shuffle(keys)
    return keys


def setup(slug: str) -> tuple[Any, str]:
    from incidents.models import Service
    from integrations.keys import create_integration

    service = Service.objects.create(name=f"Bench {slug}", slug=slug)
    created = create_integration(
        service=service, kind="events_v2", name=slug, rate_limit_per_minute=10**9
    )
    return service, created.raw


def _session() -> str:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_user("bench-storm", password="x" * 20)
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


class Sender:
    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)

    def trigger(self, key: str, dedup: str) -> None:
        event = {
            "routing_key": key,
            "event_action": "trigger",
            "dedup_key": dedup,
            "payload": {"summary": f"Node down {dedup}", "source": "bench", "severity": "error"},
        }
        self.conn.request(
            "POST",
            "/integrations/v2/enqueue",
            body=json.dumps(event).encode(),
            headers={"Content-Type": "application/json"},
        )
        response = self.conn.getresponse()
        response.read()
        if response.status != 202:
            raise RuntimeError(f"enqueue answered {response.status}")

    def get(self, path: str, cookie: str) -> None:
        self.conn.request("GET", path, headers={"Cookie": cookie})
        response = self.conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{path} answered {response.status}")


def storm(base: str, key: str, rate: float | None) -> tuple[list[float], float]:
    """Send the storm from CLIENTS threads: back to back (rate None) or on a
    fixed schedule of ``rate`` events a second. Latencies (s) and events/s."""
    events = _events(seed=len(key))
    chunks = [events[i::CLIENTS] for i in range(CLIENTS)]
    samples: list[list[float]] = [[] for _ in range(CLIENTS)]
    start = time.monotonic() + 0.2

    def work(index: int) -> None:
        sender = Sender(base)
        for i, dedup in enumerate(chunks[index]):
            due = time.monotonic()
            if rate is not None:
                due = start + (i * CLIENTS + index) / rate
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            sender.trigger(key, dedup)
            samples[index].append(time.monotonic() - due)
        sender.conn.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flat = [sample for chunk in samples for sample in chunk]
    return flat, len(flat) / (time.monotonic() - start)


def poll(base: str, cookie: str, done: threading.Event) -> dict[str, list[float]]:
    """GET / and GET /healthz alternately, back to back, until ``done``."""
    sender = Sender(base)
    samples: dict[str, list[float]] = {"/": [], "/healthz": []}
    while not done.is_set():
        for path, found in samples.items():
            started = time.perf_counter()
            sender.get(path, cookie)
            found.append(time.perf_counter() - started)
    sender.conn.close()
    return samples


IN_PROCESS = 300  # requests per in-process figure


def _cost(app: Any, environs: Any, expect: int) -> tuple[float, float]:
    """(statements, CPU ms) per request over IN_PROCESS requests."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    started = time.process_time()
    for _ in range(IN_PROCESS):
        _call(app, next(environs), expect)
    cpu = (time.process_time() - started) / IN_PROCESS * 1000
    with CaptureQueriesContext(connection) as queries:
        for _ in range(10):
            _call(app, next(environs), expect)
    return len(queries.captured_queries) / 10, cpu


def in_process(key: str) -> dict[str, tuple[float, float]]:
    """Statements and CPU ms per request, on a service already in a storm."""
    from itertools import count

    from django.core.handlers.wsgi import WSGIHandler

    app = WSGIHandler()
    path = "/integrations/v2/enqueue"

    def triggers(make_key: Any) -> Any:
        for n in count():
            yield _environ("POST", path, _event(key, make_key(n)))

    for n in range(25):  # 20 incidents of their own, then the storm
        _call(app, _environ("POST", path, _event(key, f"opening-{n}")), 202)
    for _ in range(50):  # warm-up
        _call(app, _environ("POST", path, _event(key, "opening-24")), 202)
    return {
        "repeat": _cost(app, triggers(lambda n: "opening-24"), 202),
        "new": _cost(app, triggers(lambda n: f"joining-{n}"), 202),
        "noop": _cost(app, (_environ("GET", "/healthz") for _ in count()), 200),
    }


def run() -> list[Figure]:
    setup_django()
    from incidents.models import Incident

    first, first_key = setup("bench-storm-1")
    second, second_key = setup("bench-storm-2")
    cookie = _session()
    cost = in_process(setup("bench-storm-0")[1])
    process, base = start_gunicorn()
    try:
        latencies, maximum = storm(base, first_key, None)
        done = threading.Event()
        polled: dict[str, list[float]] = {}
        poller = threading.Thread(target=lambda: polled.update(poll(base, cookie, done)))
        poller.start()
        during, achieved = storm(base, second_key, RATE or maximum / 2)
        done.set()
        poller.join()
    finally:
        stop(process)
    opened = Incident.objects.filter(service=first).count()
    opened_second = Incident.objects.filter(service=second).count()
    p99 = percentile(latencies, 99) * 1000
    dash_p50 = percentile(polled["/"], 50) * 1000
    dash = percentile(polled["/"], 99) * 1000
    noop = percentile(polled["/healthz"], 99) * 1000
    return [
        Figure(f"storm: {TRIGGERS:,} triggers, {KEYS:,} keys, max rate", maximum, "events/s", "-"),
        Figure(
            "storm: trigger latency p50 at max rate", percentile(latencies, 50) * 1000, "ms", "-"
        ),
        Figure("storm: trigger latency p99 at max rate", p99, "ms", "<= 100 ms", p99 <= 100),
        Figure(
            "storm: incidents opened (20 + the storm)", opened, "incidents", "<= 21", opened <= 21
        ),
        Figure(
            f"storm at {achieved:,.0f} events/s ({'set' if RATE else 'half max'}): trigger p99",
            percentile(during, 99) * 1000,
            "ms",
            "-",
        ),
        Figure(
            "storm at half max: incidents opened",
            opened_second,
            "incidents",
            "<= 21",
            opened_second <= 21,
        ),
        Figure(
            f"dashboard GET / p99 during it ({len(polled['/'])} loads)",
            dash,
            "ms",
            "<= 50 ms",
            dash <= 50,
        ),
        Figure("dashboard GET / p50 during it", dash_p50, "ms", "-"),
        Figure("no-op GET /healthz p99 during it", noop, "ms", "-"),
        Figure("in-process: storm repeat, statements", cost["repeat"][0], "statements", "-"),
        Figure("in-process: storm repeat, CPU", cost["repeat"][1], "ms", "-"),
        Figure("in-process: new alert joining, statements", cost["new"][0], "statements", "-"),
        Figure("in-process: new alert joining, CPU", cost["new"][1], "ms", "-"),
        Figure("in-process: no-op GET /healthz, CPU", cost["noop"][1], "ms", "-"),
    ]


if __name__ == "__main__":
    print_table("alert storm", run())
