"""Post-mortems for tests, made through the services like real ones."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from incidents import services as incident_services
from incidents.models import Incident
from postmortems import services
from postmortems.models import ActionItem, PostMortem, PostMortemStatus
from tests.factories import IncidentFactory


def resolved_incident(**kwargs: Any) -> Incident:
    return incident_services.resolve_incident(IncidentFactory(**kwargs), actor=None)


def postmortem(incident: Incident | None = None, *, actor: User | None = None) -> PostMortem:
    return services.draft_postmortem(incident or resolved_incident(), actor=actor).post_mortem


def action_item(post_mortem: PostMortem, **kwargs: Any) -> ActionItem:
    fields: dict[str, Any] = {
        "priority": "P2",
        "action": "Add a disk usage alert",
        "type": "Alert",
        "details": "",
    }
    fields.update(kwargs)
    return services.add_action_item(post_mortem, actor=None, **fields)


def published(post_mortem: PostMortem) -> PostMortem:
    return services.change_postmortem_status(post_mortem, PostMortemStatus.PUBLISHED, actor=None)
