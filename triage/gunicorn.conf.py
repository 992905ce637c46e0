"""gunicorn settings for the web process (the image's default command uses this file)."""

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
max_requests = 5000
max_requests_jitter = 500
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


def on_starting(server):  # type: ignore[no-untyped-def]
    """Start every run with an empty metrics folder so dead workers' files do not linger."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        Path(folder).mkdir(parents=True, exist_ok=True)


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
