"""What a freshly drafted post-mortem says, built from its incident.

Facts are copied (start, end, severity, service); the story is the incident's
timeline as a Markdown list; the parts only people can write (summary,
impact, root cause, lessons) are placeholders in italics.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.utils.text import slugify

from incidents.models import Incident, TimelineEvent
from postmortems.document import local

SUMMARY_PLACEHOLDER = "_What happened, in two or three sentences._"
IMPACT_PLACEHOLDER = (
    "_Who was affected and how: which users or systems, what they saw, for how long._"
)
ROOT_CAUSE_PLACEHOLDER = [
    "_What failed first?_",
    "_Why did that failure reach users?_",
    "_Why did nothing catch it sooner?_",
]
LESSONS_PLACEHOLDER = "_What went well:_ …\n\n_What went wrong:_ …\n\n_Where we got lucky:_ …"
SLUG_LENGTH = 60


def draft_title(incident: Incident) -> str:
    """The public title when a responder wrote one: the post-mortem will be
    public, and its title and file name should not repeat what monitoring
    wrote (host names, paths, customers)."""
    return incident.public_title or incident.title


def base_slug(incident: Incident) -> str:
    return slugify(draft_title(incident))[:SLUG_LENGTH].strip("-") or f"incident-{incident.pk}"


def _when(value: datetime, start: datetime) -> str:
    moment = local(value)
    if moment.date() == local(start).date():
        return f"{moment:%H:%M:%S}"
    return f"{moment:%Y-%m-%d %H:%M:%S}"


def timeline_markdown(incident: Incident, events: Iterable[TimelineEvent]) -> str:
    lines = []
    for event in events:
        who = event.actor.get_username() if event.actor is not None else "triage"
        text = " ".join(event.message.split())
        line = f"- **{_when(event.created_at, incident.opened_at)}** {event.get_kind_display()}"
        line += f" ({who})"
        if text:
            line += f": {text}"
        lines.append(line)
    zone = f"{local(incident.opened_at):%Z}"
    header = f"Times in {zone}, from {local(incident.opened_at):%Y-%m-%d}.\n\n"
    return header + "\n".join(lines)


def draft_fields(incident: Incident, events: Iterable[TimelineEvent]) -> dict[str, Any]:
    """Field values for a new PostMortem of a resolved incident."""
    ended = incident.resolved_at or incident.opened_at
    return {
        "title": draft_title(incident),
        "started_at": incident.opened_at,
        "ended_at": max(ended, incident.opened_at),
        "severity": incident.severity,
        # The public name when there is one: this fact is published.
        "affected_services": incident.service.public_name or incident.service.name,
        "summary": SUMMARY_PLACEHOLDER,
        "impact": IMPACT_PLACEHOLDER,
        "timeline": timeline_markdown(incident, events),
        "root_cause_chain": list(ROOT_CAUSE_PLACEHOLDER),
        "lessons": LESSONS_PLACEHOLDER,
    }
