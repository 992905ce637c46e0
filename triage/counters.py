"""Counters and histograms shared by every process, kept in Redis.

The web, the worker, beat and management commands all open, acknowledge and
escalate incidents, and only the web is scraped: each process adds to these
hashes as it works, and ``/metrics`` reads them at scrape time
(``paging.metrics``). Every web pod exports the same totals, so dashboards and
rules combine them across pods with ``max``, not ``sum``.

Keys: ``triage:paging:metrics:<name>``, one hash per metric. A counter's
fields are its label values joined by ``|``; a histogram's are ``le:<bound>``
(cumulative, as Prometheus expects), ``le:+Inf`` and ``sum``. The keys never
expire. They kept the prefix they had when paging owned them, so an upgrade
carries the totals over. When Redis is emptied the totals start again from
zero, which Prometheus reads as a counter reset (``rate`` and ``increase``
handle it).

Callers add after their transaction commits (``after_commit``): nothing is
counted for a change that rolled back.
"""

from __future__ import annotations

from collections.abc import Sequence

from django_redis import get_redis_connection
from redis import Redis

PREFIX = "triage:paging:metrics:"


def _client() -> Redis:
    redis: Redis = get_redis_connection("default")
    return redis


def count(name: str, labels: tuple[str, ...], amount: float = 1) -> None:
    _client().hincrbyfloat(PREFIX + name, "|".join(labels), amount)


def observe(name: str, value: float, buckets: Sequence[float]) -> None:
    pipe = _client().pipeline()
    key = PREFIX + name
    for bound in buckets:
        if value <= bound:
            pipe.hincrbyfloat(key, f"le:{bound}", 1)
    pipe.hincrbyfloat(key, "le:+Inf", 1)
    pipe.hincrbyfloat(key, "sum", value)
    pipe.execute()


def observe_many(name: str, values: Sequence[float], buckets: Sequence[float]) -> None:
    """``observe`` for many values in one round trip (an escalation storm's chunk)."""
    if not values:
        return
    key = PREFIX + name
    pipe = _client().pipeline()
    for bound in buckets:
        within = sum(1 for value in values if value <= bound)
        if within:
            pipe.hincrbyfloat(key, f"le:{bound}", within)
    pipe.hincrbyfloat(key, "le:+Inf", len(values))
    pipe.hincrbyfloat(key, "sum", sum(values))
    pipe.execute()


def read_metric(name: str) -> dict[str, float]:
    raw: dict[bytes, bytes] = _client().hgetall(PREFIX + name)  # type: ignore[assignment]
    return {key.decode(): float(value) for key, value in raw.items()}
