"""Liveness, readiness and metrics endpoints for probes and Prometheus."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.db import connection, transaction
from django.db.utils import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_redis import get_redis_connection
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """The process is up and serving. No I/O: a slow database must not get us killed."""
    return JsonResponse({"status": "ok"})


def _check_postgres() -> None:
    # Bounded so a wedged server cannot hold the probe past its timeout. SET
    # LOCAL only lasts inside a transaction (outside one PostgreSQL ignores it
    # with a warning), and a plain SET would outlive the probe on the pooled
    # connection.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = 2000")
        cursor.execute("SELECT 1")


def _check_redis() -> None:
    get_redis_connection("default").ping()


_CHECKS: dict[str, Callable[[], None]] = {"postgres": _check_postgres, "redis": _check_redis}


def _run(name: str, check: Callable[[], None]) -> dict[str, object]:
    started = time.perf_counter()
    try:
        check()
    except (DatabaseError, RedisError, OSError) as exc:
        if name == "postgres":
            # Drop the broken connection so the next request reconnects.
            connection.close()
        logger.warning("readiness check failed", extra={"dependency": name, "error": str(exc)})
        return {"ok": False, "error": exc.__class__.__name__}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 2)}


# Extra figures for /readyz, registered by apps from their AppConfig.ready()
# (paging adds "escalation": its heartbeat), so the base package names no app.
READINESS_REPORTS: dict[str, Callable[[], dict[str, object]]] = {}


@never_cache
@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    """Ready when PostgreSQL and Redis both answer; 503 names whatever is down."""
    checks = {name: _run(name, check) for name, check in _CHECKS.items()}
    down = [name for name, result in checks.items() if not result["ok"]]
    body: dict[str, object] = {"status": "unavailable" if down else "ok", "checks": checks}
    if not down:
        # Reported, not required: a stalled escalation loop is the worker's or
        # beat's problem, and taking the web out of service would not help.
        for name, report in READINESS_REPORTS.items():
            body[name] = report()
    if down:
        body["down"] = down
    return JsonResponse(body, status=503 if down else 200)
