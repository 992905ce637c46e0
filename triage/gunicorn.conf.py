"""gunicorn settings for the web process (the image's default command uses this file)."""

import gc
import os
import shutil
from pathlib import Path

from gunicorn.glogging import Logger

from triage.logs import ScrubFilter

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
# The app is imported once in the master and workers are forked from it:
# Django, the models and every library are shared copy-on-write, so a second
# worker costs its own heap (bench/memory.py prints each worker's USS and
# PSS). Nothing connects at import (database and Redis connections are opened
# lazily, per worker), so no socket is shared across the fork. A HUP then
# restarts workers from the loaded code: deploy by replacing the pod.
preload_app = os.environ.get("GUNICORN_PRELOAD", "true").lower() != "false"
# Recycle a worker after this many requests (a guard against slow leaks), but
# not every few seconds at full rate: 5,000 was ~5 s of /healthz per worker.
# The jitter keeps workers from restarting together.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "100000"))
max_requests_jitter = max_requests // 10
# Our middleware writes one structured access line per request.
accesslog = None
errorlog = "-"


class ScrubbingLogger(Logger):
    """gunicorn's error log names the request URI when a request fails: keys are cut from it."""

    def setup(self, cfg):  # type: ignore[no-untyped-def]
        super().setup(cfg)
        self.error_log.addFilter(ScrubFilter())


logger_class = ScrubbingLogger
# Heartbeat files on tmpfs: a read-only root filesystem stays read-only.
# Not a temp file: gunicorn keeps only its worker heartbeat files there.
worker_tmp_dir = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108  # nosec B108


def _fresh_metrics_folder() -> None:
    """Start every run with an empty metrics folder so dead workers' files do not linger.

    Run when gunicorn reads this file, before it loads the app: with
    ``preload_app`` the master imports the app (and creates its metric files
    in the folder) before any server hook runs.
    """
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        Path(folder).mkdir(parents=True, exist_ok=True)


_fresh_metrics_folder()


def pre_fork(server, worker):  # type: ignore[no-untyped-def]
    """Move every object the master loaded out of the garbage collector's reach.

    A collection in a worker would otherwise write to the header of each
    shared object it visits, copying the page that holds it: after the first
    collections a forked worker held nearly all of the master's memory again.
    Frozen objects are never visited, so their pages stay shared.
    """
    gc.freeze()


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
