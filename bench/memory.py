"""What a gunicorn worker costs in memory, with and without ``preload_app``.

RSS counts every page a process maps, shared or not, so two workers forked
from one master look twice as big as they are. This prints, for each worker
after it has served the pages a responder opens (login, dashboard, an
incident, the API), its USS (pages only it holds: what one more worker
really costs) and PSS (its fair share of shared pages), beside RSS — once
with the app preloaded in the master (triage's setting) and once loaded in
each worker, started back to back in the same run.

    python -m triage.devstack bench bench/memory.py
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request

import psutil
from common import Figure, print_table, setup_django, start_gunicorn, stop

WORKERS = 2
WARM_REQUESTS = 200  # per worker, spread over the pages below
TARGET_SECOND_WORKER_USS_MB = 40


def _seed() -> tuple[str, int]:
    """A user, a service and an open incident to look at."""
    setup_django()
    from django.contrib.auth.models import User

    from incidents.models import Service, Severity
    from incidents.services import open_incident

    user, _ = User.objects.get_or_create(username="bench-memory", defaults={"is_staff": True})
    service, _ = Service.objects.get_or_create(slug="bench-memory", defaults={"name": "Memory"})
    opened = open_incident(
        service=service, title="Memory bench", severity=Severity.ERROR, dedup_key="bench-memory"
    )
    return _session_cookie(user.username), opened.incident.pk


def _session_cookie(username: str) -> str:
    """A logged-in session, made the way Django's test client makes one."""
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client()
    client.force_login(User.objects.get(username=username))
    return f"sessionid={client.cookies['sessionid'].value}"


def _warm(base: str, cookie: str, incident_id: int) -> None:
    """Open the usual pages, on new connections so both workers serve them."""
    paths = ["/login", "/", f"/incidents/{incident_id}", "/oncall", "/v1/services", "/status"]
    for _ in range(WARM_REQUESTS * WORKERS // len(paths)):
        for path in paths:
            request = urllib.request.Request(f"{base}{path}", headers={"Cookie": cookie})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    response.read()
            except urllib.error.HTTPError:
                pass  # /v1 without a token: a 401 still loads the API's code


def _workers(master_pid: int) -> list[psutil.Process]:
    return sorted(psutil.Process(master_pid).children(), key=lambda child: child.pid)


def _measure(preload: bool, seed: tuple[str, int]) -> list[Figure]:
    process, base = start_gunicorn(WORKERS, GUNICORN_PRELOAD=str(preload).lower())
    try:
        _warm(base, *seed)
        time.sleep(0.5)
        label = "preloaded" if preload else "not preloaded"
        figures = []
        for number, worker in enumerate(_workers(process.pid), start=1):
            info = worker.memory_full_info()
            mb = 1024 * 1024
            name = f"worker {number} ({label})"
            figures.append(Figure(f"{name} RSS", info.rss / mb, "MB", "(shared counted)"))
            figures.append(Figure(f"worker {number} ({label}) PSS", info.pss / mb, "MB", ""))
            ok = None
            if number == WORKERS and preload:
                ok = info.uss / mb <= TARGET_SECOND_WORKER_USS_MB
            figures.append(
                Figure(
                    f"worker {number} ({label}) USS: what it alone costs",
                    info.uss / mb,
                    "MB",
                    f"<= {TARGET_SECOND_WORKER_USS_MB} MB" if number == WORKERS and preload else "",
                    ok,
                )
            )
        master = psutil.Process(process.pid).memory_full_info()
        figures.append(Figure(f"master ({label}) USS", master.uss / (1024 * 1024), "MB", ""))
        return figures
    finally:
        stop(process)


def run() -> list[Figure]:
    seed = _seed()
    return _measure(True, seed) + _measure(False, seed)


if __name__ == "__main__":
    print_table("gunicorn worker memory", run())
