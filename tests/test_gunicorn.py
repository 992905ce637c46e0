"""The web process as deployed: gunicorn with triage's config file.

Workers are forked from a master that loaded the app (``preload_app``) and
froze its objects. These tests check what that must not break: each worker
answers with its own database connection, and the request metrics of every
worker are merged in one scrape.
"""

from __future__ import annotations

import re
import subprocess
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from tests.processes import BIN, ROOT, app_env, free_port, http_status, stop, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REQUESTS = 60


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    metrics = tmp_path / "metrics"
    env = app_env(
        LOG_LEVEL="warning", PROMETHEUS_MULTIPROC_DIR=str(metrics), ALLOWED_HOSTS="127.0.0.1"
    )
    env.pop("GUNICORN_PRELOAD", None)  # the shipped default
    process = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "-c",
            str(ROOT / "triage" / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--threads",
            "2",
            "triage.wsgi",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_status(f"{base}/healthz") == 200, 60, "gunicorn up")
        yield process, base
    finally:
        stop(process)


def _get(url: str) -> int:
    status = http_status(url, timeout=10)
    assert status is not None
    return status


def test_preloaded_workers_each_serve_and_every_request_is_counted(
    gunicorn: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, base = gunicorn
    master = psutil.Process(process.pid)
    wait_for(lambda: len(master.children()) == 2, 30, "both workers forked")
    # /readyz touches PostgreSQL and Redis: a connection shared across the
    # fork would interleave two workers' protocol streams and fail here.
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(_get, [f"{base}/readyz"] * REQUESTS))
    assert statuses == [200] * REQUESTS

    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        body = response.read().decode()
    counted = sum(
        float(value)
        for value in re.findall(
            r"^django_http_requests_total_by_view_transport_method_total"
            r'\{[^}]*view="readyz"[^}]*\} (\S+)$',
            body,
            re.MULTILINE,
        )
    )
    assert counted == REQUESTS
