"""The header's badge: cover requests waiting for the signed-in person's answer."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone

from paging import shift_selectors

register = template.Library()


@register.simple_tag(takes_context=True)
def cover_requests_waiting(context: template.Context) -> int:
    """One small query per full page (``shift_selectors.waiting_count``),
    for the signed-in person (base.html asks only inside its signed-in nav)."""
    user: Any = context["user"]
    return shift_selectors.waiting_count(user, now=timezone.now())
