"""``{{ moment|minutes_left }}``: whole minutes from now until ``moment``
(never negative), for the countdowns the page's script then keeps live.
Computed when the page is rendered, never cached: the dashboard caches its
rows (data), not their markup."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone

register = template.Library()


@register.filter
def minutes_left(moment: datetime) -> int:
    return max(0, round((moment - timezone.now()).total_seconds() / 60))
