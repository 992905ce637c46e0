"""An alert storm through gunicorn: Events API v2 triggers for many dedup keys
on one service, and the dashboard while it pours in.

1. Storm at full speed: CLIENTS threads send TRIGGERS `trigger` events for
   KEYS dedup keys (each key about five times, in a shuffled order) to one
   service with the default storm settings (20 incidents a minute), back to
   back on keep-alive connections. Every event must be accepted (202); the
   figures are the latency p99 and how many incidents the service opened
   (its first 20 alerts, then one "Alert storm" incident for the rest).
2. The team during a storm: the same storm on a second service, sent on a
   fixed schedule at half the rate phase 1 reached (open loop: latency from
   the scheduled send time), while one signed-in responder loads the
   dashboard (`GET /`, the whole page) back to back. The figure is the
   dashboard's p99, beside the no-op `GET /healthz` sent the same way.

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

CLIENTS = 8
# The storm; BENCH_STORM_TRIGGERS / BENCH_STORM_KEYS scale it down
# (same five triggers a key) when the machine is too busy to send it all.
TRIGGERS = int(os.environ.get("BENCH_STORM_TRIGGERS", "10000"))
KEYS = int(os.environ.get("BENCH_STORM_KEYS", str(TRIGGERS // 5)))


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


def run() -> list[Figure]:
    setup_django()
    from incidents.models import Incident

    first, first_key = setup("bench-storm-1")
    second, second_key = setup("bench-storm-2")
    cookie = _session()
    process, base = start_gunicorn()
    try:
        latencies, maximum = storm(base, first_key, None)
        done = threading.Event()
        polled: dict[str, list[float]] = {}
        poller = threading.Thread(target=lambda: polled.update(poll(base, cookie, done)))
        poller.start()
        during, achieved = storm(base, second_key, maximum / 2)
        done.set()
        poller.join()
    finally:
        stop(process)
    opened = Incident.objects.filter(service=first).count()
    opened_second = Incident.objects.filter(service=second).count()
    p99 = percentile(latencies, 99) * 1000
    dash = percentile(polled["/"], 99) * 1000
    noop = percentile(polled["/healthz"], 99) * 1000
    return [
        Figure(f"storm: {TRIGGERS:,} triggers, {KEYS:,} keys, max rate", maximum, "events/s", "-"),
        Figure("storm: trigger latency p99 at max rate", p99, "ms", "<= 100 ms", p99 <= 100),
        Figure(
            "storm: incidents opened (20 + the storm)", opened, "incidents", "<= 21", opened <= 21
        ),
        Figure(
            f"storm at {achieved:,.0f} events/s (half max): trigger p99",
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
        Figure("no-op GET /healthz p99 during it", noop, "ms", "-"),
    ]


if __name__ == "__main__":
    print_table("alert storm", run())
