"""The README's run command, started the way a user starts it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.processes import ROOT, free_port, http_status, wait_for


def _descendants(pid: int) -> set[int]:
    try:
        return {child.pid for child in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def _servers_using(folder: Path) -> set[int]:
    """postgres and redis-server started for this folder (pg_ctl detaches postgres)."""
    found = set()
    for process in psutil.process_iter(["cmdline"]):
        if str(folder) in " ".join(process.info["cmdline"] or []):
            found.add(process.pid)
    return found


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _start_then_ctrl_c(home: Path) -> str:
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "STATIC_ROOT"}
    }
    env.update({"TRIAGE_HOME": str(home), "GUNICORN_WORKERS": "1"})
    process = subprocess.Popen(
        [sys.executable, "-m", "triage.devstack", "run", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    started: set[int] = set()
    try:
        wait_for(lambda: http_status(f"http://127.0.0.1:{port}/healthz") == 200, 90, "healthz")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            ready = json.load(response)
        assert ready["checks"]["postgres"]["ok"]
        assert ready["checks"]["redis"]["ok"]
        # gunicorn master + worker, celery worker + child, beat, redis-server.
        wait_for(lambda: len(_descendants(process.pid)) >= 6, 30, "web, worker and beat")
        started = _descendants(process.pid) | _servers_using(home)
        names = {psutil.Process(pid).name() for pid in started}
        assert "postgres" in names
        assert "redis-server" in names

        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    left = {pid for pid in started if _alive(pid)}
    assert not left, f"processes left running after Ctrl-C: {left}\n{text}"
    return text


@pytest.mark.slow
def test_run_command_starts_everything_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    home = tmp_path / "home"

    first = _start_then_ctrl_c(home)
    assert "Created admin account 'admin' with password" in first

    # A second start finds the same database: the admin exists already.
    second = _start_then_ctrl_c(home)
    assert "An admin account exists already" in second
    assert "Created admin account" not in second
