"""The insights figures, cached in Redis (Django's cache) for a minute.

Keys (under the cache's ``triage`` prefix), each living ``TTL`` seconds and
never invalidated by writes:

- ``insights:<VERSION>:<days>:<service slug or *>``: a pickled
  ``insights.selectors.Health``, read by the page and ``/v1/insights``;
- ``insights:<VERSION>:charts:<days>:<service slug or *>:<when read>``: the
  page's charts drawn from that very Health (drawing them costs more than
  reading the cached figures), so the charts always match the figures.

Why a minute of staleness is fine: the figures summarise 7 to 90 days of
history, so an incident opened in the last minute moves them by a fraction
that nobody acts on; the page says when they were read. What it buys: the
first person to look pays for the aggregates (a pass over up to 90 days of
incidents and pages), everyone else in that minute gets them from one
Redis read. Concurrent first looks may each compute them (no lock): at most
a few identical read-only queries, never a wrong figure.

When Redis is empty, the next request computes and stores them again; when
Redis is unreachable, every request computes them from PostgreSQL (slower,
still right) instead of failing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from django.core.cache import cache
from redis.exceptions import RedisError

from incidents.models import Service
from insights import charts
from insights.selectors import Health, health

log = logging.getLogger(__name__)

TTL = 60
# Bumped when Health's shape changes, so a new release never unpickles an
# old release's entry.
VERSION = 1


def key(days: int, service: Service | None) -> str:
    return f"insights:{VERSION}:{days}:{service.slug if service else '*'}"


def charts_key(figures: Health) -> str:
    scope = figures.service.slug if figures.service else "*"
    return f"insights:{VERSION}:charts:{figures.days}:{scope}:{figures.end.timestamp()}"


T = TypeVar("T")


def _cached(name: str, kind: type[T], compute: Callable[[], T]) -> T:
    try:
        found = cache.get(name)
    except RedisError as exc:
        log.warning("insights cache unavailable, computing: %s", exc)
        return compute()
    if isinstance(found, kind):
        return found
    value = compute()
    try:
        cache.set(name, value, TTL)
    except RedisError as exc:
        log.warning("insights cache unavailable, not stored: %s", exc)
    return value


def cached_health(days: int, service: Service | None = None) -> Health:
    """The figures for the range and service, at most ``TTL`` seconds old."""
    return _cached(key(days, service), Health, lambda: health(days, service))


def cached_charts(figures: Health) -> charts.Charts:
    """The charts of these figures, drawn once."""
    return _cached(charts_key(figures), charts.Charts, lambda: charts.render(figures))
