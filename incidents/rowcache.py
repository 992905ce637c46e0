"""The dashboard's rows as markup, cached by what they show.

A row's markup is a function of its data (the incident, who was paged and how
it went, what happens next) and of one clock-dependent fact: the minutes left
in its countdown ("in 4 min"), which the page's script then keeps live from
the ``<time datetime>`` beside it. So a row is cached under a digest of its
data, the minutes it shows and the row template itself: after a change to
one incident, the other rows of the page are not rendered again, and a
countdown rendered a minute ago is never shown (its minute is in the key).

Entries are never invalidated: a row that shows something else has another
key, and old entries expire (``TTL``). Without Redis, rows are rendered.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence

from django.core.cache import cache
from django.template.loader import get_template
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

from incidents.selectors import DashboardRow
from incidents.templatetags.countdown import minutes_left

logger = logging.getLogger(__name__)

ROW_TEMPLATE = "incidents/dashboard.html#incident-row"
TTL = 600  # rows of a page nobody looks at any more are left to expire


@functools.cache
def _template_stamp() -> str:
    """The rows' template (the page with its partials): a deploy that changes
    it changes every key."""
    page = get_template(ROW_TEMPLATE.partition("#")[0])
    return hashlib.sha256(page.template.source.encode()).hexdigest()[:16]  # type: ignore[attr-defined]


def _minutes(row: DashboardRow) -> int | None:
    step = row.next_step
    return minutes_left(step.at) if step is not None and step.at is not None else None


def _key(stamp: str, incident_url: str, row: DashboardRow) -> str:
    # repr of the row's dataclasses: every field, the reach and next step
    # included, in a fixed order; free text (titles) is hashed into a fixed length.
    # The times it prints are in the viewer's zone (accounts' middleware).
    zone = timezone.get_current_timezone_name()
    shown = repr((stamp, incident_url, zone, row, _minutes(row)))
    return "dashboard-row:" + hashlib.sha256(shown.encode()).hexdigest()


def render_rows(rows: Sequence[DashboardRow], incident_url: str) -> list[SafeString]:
    """Each row's ``<tr>``, from the cache where an identical row was rendered."""
    stamp = _template_stamp()
    keys = [_key(stamp, incident_url, row) for row in rows]
    try:
        found: dict[str, str] = cache.get_many(keys)
    except (RedisError, OSError, ConnectionInterrupted):
        logger.warning("redis unavailable; dashboard rows rendered")
        found = {}
    template = get_template(ROW_TEMPLATE)
    rendered: dict[str, str] = {}
    for key, row in zip(keys, rows, strict=True):
        if key in found:
            continue
        before = _minutes(row)
        html = template.render({"incident": row, "incident_url": incident_url})
        # Only a row whose countdown did not tick over while rendering is
        # cached under the minute in its key (minutes only ever go down).
        if _minutes(row) == before:
            rendered[key] = html
        found[key] = html
    if rendered:
        try:
            cache.set_many(rendered, TTL)
        except (RedisError, OSError, ConnectionInterrupted):
            logger.warning("redis unavailable; dashboard rows not cached")
    # nosec: the markup was rendered by the autoescaping row template above
    # (or by it earlier, from the same data); it is never built from strings.
    return [mark_safe(found[key]) for key in keys]  # noqa: S308  # nosec B308 B703
