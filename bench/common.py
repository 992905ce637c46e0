"""Shared helpers for the benchmark scripts (run them with `make bench`)."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage.settings")
    import django

    django.setup()


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    target: str
    ok: bool | None = None

    def line(self) -> str:
        verdict = {True: "ok", False: "MISSED", None: ""}[self.ok]
        return f"{self.name:<58} {self.value:>12,.2f} {self.unit:<10} {self.target:<22} {verdict}"


def print_table(title: str, figures: list[Figure]) -> None:
    print(f"\n== {title} ==")
    print(f"{'figure':<58} {'value':>12} {'unit':<10} {'target':<22}")
    for figure in figures:
        print(figure.line())


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(samples: list[float]) -> tuple[float, float, float]:
    return (
        statistics.median(samples) * 1000,
        percentile(samples, 99) * 1000,
        max(samples) * 1000,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gunicorn(
    workers: int = 2, threads: int = 4, **env: str
) -> tuple[subprocess.Popen[bytes], str]:
    """gunicorn with triage's config file on a free port; ``env`` adds variables."""
    port = free_port()
    process = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "-c",
            str(ROOT / "triage" / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "triage.wsgi",
        ],
        cwd=ROOT,
        env={**os.environ, "LOG_LEVEL": "warning", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                return process, base
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("gunicorn did not start")


def worker_rss_mb(master_pid: int) -> float:
    """The resident memory of the largest gunicorn worker (a child of the master), in MB."""
    sizes = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != master_pid:  # fields[1] is the parent pid
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]) / 1024)
    return max(sizes, default=0.0)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
