"""The insights figures, cached in Redis (Django's cache) for a minute.

Keys (under the cache's ``triage`` prefix), each living ``TTL`` seconds and
never invalidated by writes:

- ``insights:<VERSION>:<days>:<service slug or *>``: a pickled
  ``insights.selectors.Health``, read by the page and ``/v1/insights``;
- ``insights:<VERSION>:charts:<days>:<service slug or *>:<digest>``: the
  page's charts, named by a digest of the numbers they draw (drawing them
  costs more than reading the figures), so they always match the figures
  and are drawn again only when those numbers change;
- ``insights:<VERSION>:html:<days>:<service slug or *>:<when read>:<time
  zone>:<language>``: the page's figures and charts as HTML, rendered once
  per time zone and language from that very Health: a cached page is two
  small Redis reads and no template work over the figures.

The figures come from the daily roll-ups (``insights.rolled``): a cold entry
costs a few small queries, not a pass over 90 days. Celery beat
(``insights.refresh``, every ``REFRESH_SECONDS``) also computes the overall
figures of each range into their entries before they expire, with their
charts and their HTML in the server's time zone, so nobody waits on a cold
entry for them (people with a zone of their own wait only for the
template to be rendered over the warm figures).

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

import hashlib
import logging
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.safestring import SafeString, mark_safe
from redis.exceptions import RedisError

from incidents.models import Service
from insights import charts
from insights.rolled import rolled_health
from insights.selectors import Health

log = logging.getLogger(__name__)

TTL = 60
# Beat refreshes the overall entries this often: within their TTL.
REFRESH_SECONDS = 45
# Bumped when Health's shape changes, so a new release never unpickles an
# old release's entry.
VERSION = 2


def key(days: int, service: Service | None) -> str:
    return _key(days, service.slug if service else "")


def _key(days: int, slug: str) -> str:
    return f"insights:{VERSION}:{days}:{slug or '*'}"


def charts_key(figures: Health) -> str:
    """Named by the numbers the charts draw: figures read again with the
    same numbers (most of a range is closed days) reuse the charts."""
    scope = figures.service.slug if figures.service else "*"
    drawn = repr(
        (
            figures.per_day,
            bool(figures.incidents),
            [
                (person.username, person.business_hours, person.nights, person.weekends)
                for person in figures.pages[: charts.PEOPLE_SHOWN]
            ],
        )
    )
    digest = hashlib.sha256(drawn.encode()).hexdigest()[:32]
    return f"insights:{VERSION}:charts:{figures.days}:{scope}:{digest}"


def html_key(figures: Health) -> str:
    scope = figures.service.slug if figures.service else "*"
    return (
        f"insights:{VERSION}:html:{figures.days}:{scope}:{figures.end.timestamp()}"
        f":{timezone.get_current_timezone_name()}:{translation.get_language()}"
    )


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
    return _cached(key(days, service), Health, lambda: rolled_health(days, service))


def cached_health_of(days: int, slug: str) -> Health:
    """``cached_health`` of the service with this slug (all of them for
    ""): the service's row is read only when the figures are computed.
    Raises ``Service.DoesNotExist`` when there is no such service."""

    def compute() -> Health:
        return rolled_health(days, Service.objects.get(slug=slug) if slug else None)

    return _cached(_key(days, slug), Health, compute)


def page_context(figures: Health) -> dict[str, object]:
    """What the figures' HTML is rendered from (``cached_html``)."""
    return {"figures": figures, "ttl": TTL, "business_hours": settings.BUSINESS_HOURS}


def refresh(days: int) -> None:
    """Compute the overall figures of the range, their charts and their
    HTML in the server's time zone into the cache now, whatever is there:
    a person who keeps the server's zone then finds the whole page warm."""
    figures = rolled_health(days)
    try:
        cache.set(key(days, None), figures, TTL)
    except RedisError as exc:
        log.warning("insights cache unavailable, not refreshed: %s", exc)
        return
    cached_charts(figures)
    with timezone.override(settings.TIME_ZONE):
        cached_html(figures, page_context(figures))


def cached_charts(figures: Health) -> charts.Charts:
    """The charts of these figures, drawn once."""
    return _cached(charts_key(figures), charts.Charts, lambda: charts.render(figures))


def cached_html(figures: Health, context: dict[str, object]) -> SafeString:
    """The page's figures and charts as HTML, rendered once for these
    figures in the active time zone and language."""

    def render() -> str:
        return render_to_string(
            "insights/_figures.html", context | {"charts": cached_charts(figures)}
        )

    # Rendered by our own template (autoescaped) from the figures.
    return mark_safe(_cached(html_key(figures), str, render))  # noqa: S308  # nosec B308 B703
