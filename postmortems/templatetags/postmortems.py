"""Template tags for other apps' pages: the dashboard's post-mortem
suggestions and the incident page's post-mortem panel."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import template

from incidents.models import Incident
from postmortems import selectors
from postmortems.document import format_duration
from postmortems.models import PostMortem

register = template.Library()


@register.inclusion_tag("postmortems/_suggestions.html", takes_context=True)
def postmortem_suggestions(context: template.Context) -> dict[str, Any]:
    """Incidents resolved in the last 7 days without a post-mortem, each with a
    "Draft post-mortem" button. Usage: ``{% load postmortems %}{% postmortem_suggestions %}``."""
    return {
        "suggestions": selectors.postmortem_suggestions(),
        "csrf_token": context.get("csrf_token"),
    }


@register.simple_tag
def incident_postmortem(incident: Incident) -> PostMortem | None:
    """``{% incident_postmortem incident as pm %}``: its post-mortem, or None."""
    return selectors.postmortem_for_incident(incident)


@register.filter
def readable_duration(delta: timedelta) -> str:
    """``1h 23m``, as post-mortems write durations (the dashboard's time to
    acknowledge and to resolve)."""
    return format_duration(delta)
