"""What a freshly drafted post-mortem says, built from its incident.

Facts are copied (start, end, severity, service); the story is the incident's
timeline as a Markdown list; the parts only people can write (summary,
impact, root cause, lessons) start empty: the editor shows what to write in
each as its placeholder.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.utils.text import slugify

from incidents.models import Incident, TimelineEvent
from postmortems.document import local

# What drafts before this release stored in the sections people write
# (italic placeholder text that had to be deleted). New drafts leave those
# sections empty and the editor shows its hints as HTML placeholders
# (postmortems.sections.PLACEHOLDERS); lines of this old text still count as
# not written when publishing.
FORMER_PLACEHOLDER_LINES = frozenset(
    {
        "_What happened, in two or three sentences._",
        "_Who was affected and how: which users or systems, what they saw, for how long._",
        "_What failed first?_",
        "_Why did that failure reach users?_",
        "_Why did nothing catch it sooner?_",
        "_What went well:_ …",
        "_What went wrong:_ …",
        "_Where we got lucky:_ …",
    }
)
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
        "summary": "",
        "impact": "",
        "timeline": timeline_markdown(incident, events),
        "root_cause_chain": [],
        "lessons": "",
    }
