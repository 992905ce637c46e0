"""Times as people read them: in the viewer's zone, labelled with it.

``{{ moment|when }}`` → ``2026-11-30 09:00 CET``; ``{{ moment|when:"H:i" }}``
→ ``09:00 CET``. The viewer's zone is the one ``accounts.middleware``
activated (the server's ``TIME_ZONE`` for anonymous pages). ``in_zone``
shows a moment in a given zone instead: a schedule's handoffs in the
schedule's own.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from django import template
from django.utils import dateformat, timezone

register = template.Library()

DEFAULT = "Y-m-d H:i"


@register.filter(expects_localtime=True)
def when(value: object, fmt: str = DEFAULT) -> str:
    """``value`` (already in the viewer's zone) in ``fmt``, then the zone's
    abbreviation (``CET``, ``EST``, ``+03`` where the zone has none)."""
    if not isinstance(value, datetime):
        return ""
    return dateformat.format(value, f"{fmt} T")


@register.filter
def in_zone(value: object, name: str) -> str:
    """``value`` at its wall-clock time in the zone ``name``, labelled; ""
    when that zone is the viewer's (the time beside it already says it)."""
    if not isinstance(value, datetime) or name == timezone.get_current_timezone_name():
        return ""
    return dateformat.format(value.astimezone(ZoneInfo(name)), "D H:i T")


@register.simple_tag
def now_when(fmt: str = DEFAULT) -> str:
    return when(timezone.localtime(), fmt)
