"""The header's badge: cover requests waiting for the signed-in person's answer."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone

from paging import shift_selectors

register = template.Library()


@register.simple_tag(takes_context=True)
def cover_requests_waiting(context: template.Context) -> int:
    """One small query per full page (``shift_selectors.waiting_count``);
    none for someone signed out."""
    user: Any = context.get("user")
    if user is None or not user.is_authenticated:
        return 0
    return shift_selectors.waiting_count(user, now=timezone.now())
