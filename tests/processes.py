"""Helpers for tests that start real processes (workers, servers, the run command)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def database_url() -> str:
    """A URL for the database the tests use right now (the test database)."""
    cfg = connection.settings_dict
    user = quote(cfg["USER"] or "", safe="")
    password = quote(cfg["PASSWORD"] or "", safe="")
    auth = f"{user}:{password}@" if password else f"{user}@"
    host = str(cfg["HOST"] or "")
    if host.startswith("/"):
        return f"postgresql://{auth}/{cfg['NAME']}?host={quote(host)}"
    port = f":{cfg['PORT']}" if cfg["PORT"] else ""
    return f"postgresql://{auth}{host}{port}/{cfg['NAME']}"


def app_env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "triage.settings",
        "LOG_FORMAT": "console",
    }
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s: {message}")


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def stop(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(5)


@contextlib.contextmanager
def celery_worker(
    *extra_args: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A real `celery worker` process consuming from the test Redis."""
    process = subprocess.Popen(
        [
            str(BIN / "celery"),
            "-A",
            "triage",
            "worker",
            "-l",
            "INFO",
            "--concurrency",
            "1",
            "--without-gossip",
            "--without-mingle",
            *extra_args,
        ],
        cwd=ROOT,
        env=env or app_env(),
        start_new_session=True,
    )
    try:
        yield process
    finally:
        stop(process)


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``manage.py check --deploy`` failing on warnings, under these settings."""
    env = {**env}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set for the browser tests only
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
