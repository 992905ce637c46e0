"""Template tags for the incident page (an app below this one cannot import
it): what monitoring sent with the incident — Grafana's links per alert — and
the recent changes to its service."""

from __future__ import annotations

from typing import Any

from django import template

from incidents.models import Incident
from integrations import selectors
from integrations.models import Alert

register = template.Library()

LINK_TITLES = {
    "dashboard": "Dashboard",
    "panel": "Panel",
    "silence": "Silence",
    "image": "Image",
}


@register.inclusion_tag("integrations/_incident_panel.html")
def incident_integrations(incident: Incident) -> dict[str, Any]:
    """``{% load integrations %}{% incident_integrations incident %}``."""
    alerts = [
        (
            alert,
            [
                (LINK_TITLES[name], url)
                for name, url in alert.links.items()
                if name in LINK_TITLES and isinstance(url, str)
            ],
        )
        for alert in Alert.objects.filter(incident=incident).exclude(links={})[:50]
    ]
    changes = [
        (change, selectors.change_links(change)) for change in selectors.recent_changes(incident)
    ]
    return {"alert_links": alerts, "changes": changes, "incident": incident}
