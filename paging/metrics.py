"""Metrics computed when Prometheus scrapes the web: right whichever pod answers.

The worker and beat are not scraped; what they count lives in Redis
(``triage.counters``) and is read here, with the paging state
(``paging.state``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from redis.exceptions import RedisError

from incidents.selectors import open_counts_by_severity
from paging import state
from paging.escalation import LATENESS_BUCKETS
from triage import counters
from triage.metrics import TIME_TO_ACKNOWLEDGE_BUCKETS

logger = logging.getLogger(__name__)


def collect() -> Iterator[Metric]:
    # Each source is optional: a scrape during an outage still returns the
    # process metrics (and the outage shows in them) instead of failing.
    try:
        counts = open_counts_by_severity()
    except DatabaseError:
        logger.warning("postgres unavailable: incident metrics skipped in this scrape")
    else:
        open_incidents = GaugeMetricFamily(
            "triage_open_incidents", "Open incidents by severity.", labels=["severity"]
        )
        for severity, count in counts.items():
            open_incidents.add_metric([severity], count)
        yield open_incidents
    try:
        yield from _from_redis()
    except (RedisError, OSError):
        logger.warning("redis unavailable: paging metrics skipped in this scrape")


def _from_redis() -> Iterator[Metric]:
    now = timezone.now().timestamp()
    backlog = GaugeMetricFamily(
        "triage_escalation_due_backlog", "Escalations due now and not yet taken."
    )
    backlog.add_metric([], state.due_count(now))
    yield backlog
    heartbeat = GaugeMetricFamily(
        "triage_escalation_heartbeat_timestamp_seconds",
        "Unix time of the last completed escalation pass.",
    )
    heartbeat.add_metric([], state.heartbeat() or 0)
    yield heartbeat
    queue = GaugeMetricFamily(
        "triage_celery_queue_length", "Tasks waiting in a Celery queue.", labels=["queue"]
    )
    for name in (settings.ESCALATION_QUEUE, settings.CELERY_TASK_DEFAULT_QUEUE):
        queue.add_metric([name], state.celery_queue_length(name))
    yield queue
    yield _counter(
        "pages",
        "triage_pages",
        "Notification attempts by channel and outcome.",
        ["channel", "outcome"],
    )
    yield _counter(
        "escalations", "triage_escalations", "Escalation steps taken, by reason.", ["reason"]
    )
    yield _counter(
        "nobody_reached",
        "triage_incidents_nobody_reached",
        "Incidents whose last escalation level was paged and reached nobody, by severity.",
        ["severity"],
    )
    yield _histogram(
        "escalation_lateness",
        "triage_escalation_lateness_seconds",
        "Seconds from an escalation's deadline to the page being recorded.",
        LATENESS_BUCKETS,
    )
    yield _counter(
        "incidents_opened",
        "triage_incidents_opened",
        "Incidents opened, by source (api, ui, alertmanager, events_v2, heartbeat, report).",
        ["source"],
    )
    yield _histogram(
        "time_to_acknowledge",
        "triage_time_to_acknowledge_seconds",
        "Seconds from an incident opening to its first acknowledgement.",
        TIME_TO_ACKNOWLEDGE_BUCKETS,
    )


def _counter(key: str, name: str, documentation: str, labels: list[str]) -> CounterMetricFamily:
    """A counter kept in Redis by ``counters.count``: one field per label set, joined by |."""
    counter = CounterMetricFamily(name, documentation, labels=labels)
    for joined, value in counters.read_metric(key).items():
        counter.add_metric(joined.split("|"), value)
    return counter


def _histogram(
    key: str, name: str, documentation: str, bounds: tuple[float, ...]
) -> HistogramMetricFamily:
    raw = counters.read_metric(key)
    buckets = [(str(float(b)), raw.get(f"le:{b}", 0.0)) for b in bounds]
    buckets.append(("+Inf", raw.get("le:+Inf", 0.0)))
    histogram = HistogramMetricFamily(name, documentation)
    histogram.add_metric([], buckets, sum_value=raw.get("sum", 0.0))
    return histogram


def escalation_heartbeat() -> dict[str, object]:
    """For /readyz: how long ago the escalation loop last completed a pass."""
    last = state.heartbeat()
    if last is None:
        return {"ok": False, "detail": "no escalation pass recorded yet"}
    age = round(time.time() - last, 1)
    limit = max(30.0, settings.ESCALATION_CHECK_SECONDS * 10)
    return {"ok": age <= limit, "heartbeat_age_seconds": age, "stale_after_seconds": limit}
