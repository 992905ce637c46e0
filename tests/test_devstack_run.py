"""The README's run command, started the way a user starts it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import psutil
import psycopg
import pytest

from tests.processes import ROOT, free_port, http_status, wait_for
from triage.devstack import THROWAWAY_POSTGRES, EmbeddedPostgres


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


def _user_env(home: Path) -> dict[str, str]:
    """A developer's shell: no server URLs, so devstack uses embedded ones."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "STATIC_ROOT"}
    }
    env.update({"TRIAGE_HOME": str(home), "GUNICORN_WORKERS": "1"})
    return env


def _start_then_ctrl_c(home: Path) -> str:
    port = free_port()
    env = _user_env(home)
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


ADMIN_AND_REDIS = (
    "from django.contrib.auth.models import User\n"
    "from django_redis import get_redis_connection\n"
    "print(User.objects.get(is_superuser=True).username, get_redis_connection().ping())"
)


@pytest.mark.slow
def test_exec_beside_a_running_stack_uses_its_servers_and_leaves_them_running(
    tmp_path: Path,
) -> None:
    """The README's `exec -- manage.py ...` while `make run` is up: it works
    on the running stack's PostgreSQL and Redis, its stdout carries only the
    command's output (`manage.py mcp` speaks JSON-RPC there), and the stack
    is still ready after it exits."""
    home = tmp_path / "home"
    port = free_port()
    env = _user_env(home)
    with (tmp_path / "run.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "triage.devstack", "run", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    readyz = f"http://127.0.0.1:{port}/readyz"
    try:
        # A fresh database is migrated first: on a crowded machine, minutes.
        wait_for(lambda: http_status(readyz) == 200, 180, "readyz")
        servers = _servers_using(home)
        names = {psutil.Process(pid).name() for pid in servers}
        assert {"postgres", "redis-server"} <= names

        command = [sys.executable, "manage.py", "shell", "-v", "0", "-c", ADMIN_AND_REDIS]
        done = subprocess.run(
            [sys.executable, "-m", "triage.devstack", "exec", "--", *command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == "admin True\n"
        assert "devstack | using the running embedded PostgreSQL" in done.stderr
        assert "devstack | using the running embedded Redis" in done.stderr
        assert "stopped" not in done.stderr

        assert all(_alive(pid) for pid in servers), "exec stopped the stack's servers"
        assert http_status(readyz) == 200
        with urllib.request.urlopen(readyz, timeout=5) as response:
            ready = json.load(response)
        assert ready["checks"]["postgres"]["ok"]
        assert ready["checks"]["redis"]["ok"]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    output = (tmp_path / "run.log").read_text(errors="replace")
    assert process.returncode == 0, output
    assert not {pid for pid in servers if _alive(pid)}, output


def _flush_settings(url: str) -> dict[str, str]:
    with psycopg.connect(url) as connection:
        return {
            name: connection.execute("SELECT current_setting(%s)", [name]).fetchone()[0]
            for name in THROWAWAY_POSTGRES
        }


@pytest.mark.slow
def test_the_test_postgres_does_not_wait_for_the_disk_and_make_runs_does() -> None:
    """`make check` and `make test` run on an embedded PostgreSQL that skips
    the flushes making a commit survive a power cut (its databases are
    disposable), also after a restart; `make run`'s server keeps PostgreSQL's
    durable defaults, since it holds a developer's incidents."""
    folder = Path(tempfile.mkdtemp(prefix="triage-pg-"))  # short: unix socket paths
    disposable = EmbeddedPostgres(folder / "test", durable=False)
    durable = EmbeddedPostgres(folder / "run")
    try:
        off = dict.fromkeys(THROWAWAY_POSTGRES, "off")
        # The reload the settings take effect with is signalled, not awaited.
        wait_for(lambda: _flush_settings(disposable.url) == off, 30, "settings reloaded")
        assert _flush_settings(durable.url) == dict.fromkeys(THROWAWAY_POSTGRES, "on")

        disposable.stop()
        disposable.start()
        assert _flush_settings(disposable.url) == off
    finally:
        disposable.stop()
        durable.stop()
        shutil.rmtree(folder, ignore_errors=True)
