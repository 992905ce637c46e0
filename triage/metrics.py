"""Prometheus exposition: every metric name triage exports is defined here.

Scrape-time (computed from PostgreSQL/Redis when scraped, see
``paging.metrics``): ``triage_open_incidents{severity}``,
``triage_escalation_due_backlog``, ``triage_celery_queue_length{queue}``,
``triage_escalation_heartbeat_timestamp_seconds``, and the counters every
process keeps in Redis: ``triage_pages_total{channel,outcome}``,
``triage_escalations_total{reason}``, ``triage_escalation_lateness_seconds``,
``triage_incidents_opened_total{source}``,
``triage_time_to_acknowledge_seconds``.

Request, database and cache metrics come from django-prometheus. Under
gunicorn with several workers each process keeps its own counters, so when
``PROMETHEUS_MULTIPROC_DIR`` is set (the gunicorn config and the chart set it)
the view merges every worker's files. Business figures (open incidents and the
like) are computed at scrape time from PostgreSQL by collectors, which is right
whichever process or pod happens to answer the scrape.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Iterable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

# Collectors that query the database when scraped; apps append to this list
# from their AppConfig.ready().
ScrapeCollector = Callable[[], Iterable[Metric]]
SCRAPE_COLLECTORS: list[ScrapeCollector] = []


class _ScrapeTime(Collector):
    def collect(self) -> Iterable[Metric]:
        for collector in SCRAPE_COLLECTORS:
            yield from collector()


def registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
    else:
        merged = CollectorRegistry(auto_describe=True)
        merged.register(_ProcessRegistry())
    merged.register(_ScrapeTime())
    return merged


class _ProcessRegistry(Collector):
    """The default registry of this process, wrapped so it can join another registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def _authorized(request: HttpRequest) -> bool:
    """True when no METRICS_TOKEN is set, or the request carries it as a bearer token."""
    expected: str = settings.METRICS_TOKEN
    if not expected:
        return True
    kind, _, given = request.headers.get("Authorization", "").partition(" ")
    # compare_digest takes the same time wherever the strings differ, so the
    # token cannot be guessed one character at a time from response times.
    return kind.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), expected.encode()
    )


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _authorized(request):
        response = HttpResponse(
            "A bearer token is required (METRICS_TOKEN).\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = 'Bearer realm="triage metrics"'
        return response
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)


# --- triage's own counters --------------------------------------------------
# Kept in Redis (``triage.counters``) by whichever process does the work, and
# exported at scrape time by ``paging.metrics``.

TIME_TO_ACKNOWLEDGE_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)
