"""A post-mortem as its Markdown document, and its follow-ups as TODO JSON.

The Markdown is what ``export_postmortems`` writes and what the public page
renders; ``postmortems.markdown_tables`` reads its Prevention Plan back, so
``parse(export(pm))`` gives the same pending items as ``todo_json(pm)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from incidents.models import Severity
from postmortems.markdown_escape import escape_block, escape_line
from postmortems.markdown_tables import STATUS_WORD, escape_cell, todo_report
from postmortems.models import ActionItem, ActionStatus, PostMortem

PREVENTION_HEADER = (
    "| Priority | Action | Type | Details | Status |\n"
    "|----------|--------|------|---------|--------|"
)
FOLLOWUP_HEADER = (
    "| Date | Action | Priority | Type | Commit | Implemented By |\n"
    "|------|--------|----------|------|--------|----------------|"
)
NOT_WRITTEN = "_Not written yet._"
# The sections written for publication, as the public document's headings.
PUBLIC_SECTIONS = frozenset({"Summary", "Impact", "Root Cause Chain", "Lessons Learned"})
NEEDS_REVIEW = "Needs human review"


def local(value: datetime) -> datetime:
    # The document is shared (exported, published): always the server's
    # TIME_ZONE, whichever reader's zone the request activated.
    return timezone.localtime(value, timezone.get_default_timezone())


def export_filename(post_mortem: PostMortem) -> str:
    """``YYYY-MM-DD-slug.md``, dated by the incident's start in TIME_ZONE."""
    return f"{local(post_mortem.started_at):%Y-%m-%d}-{post_mortem.slug}.md"


def format_duration(delta: timedelta) -> str:
    """``1d 2h 5m``, ``1h 23m``, ``7m``; below a minute ``under a minute``
    (not ``0m``)."""
    minutes = max(0, int(delta.total_seconds()) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m"
    return "under a minute"


def _day(moment: datetime) -> str:
    return f"{moment.day} {moment:%b %Y}"  # 9 Nov 2026: no zero, no locale


def format_span(start: datetime, end: datetime) -> str:
    """When it happened, in TIME_ZONE: ``20:16–21:39 UTC, 29 Nov 2026`` within
    a day, ``29 Nov 2026 23:50 – 30 Nov 2026 00:10 UTC`` across days. Each
    time carries its own zone name when they differ (a DST change between)."""
    start, end = local(start), local(end)
    first, last = f"{start:%Z}", f"{end:%Z}"
    if start.date() == end.date() and first == last:
        return f"{start:%H:%M}–{end:%H:%M} {last}, {_day(start)}"
    left = f"{_day(start)} {start:%H:%M}" + ("" if first == last else f" {first}")
    return f"{left} – {_day(end)} {end:%H:%M} {last}"


def _commit_cell(item: ActionItem) -> str:
    # A URL needs no Markdown escaping but its pipes, which %-encoding keeps working.
    link = item.link.replace("|", "%7C")
    if item.commit and link:
        return f"[`{item.commit[:12]}`]({link})"
    if item.commit:
        return f"`{item.commit[:12]}`"
    if link:
        return f"<{link}>"
    return "—"


def prevention_rows(items: Sequence[ActionItem]) -> list[str]:
    return [
        f"| {item.priority} | {escape_cell(item.action)} | {item.type} | "
        f"{escape_cell(item.details)} | {STATUS_WORD[item.status]} |"
        for item in items
    ]


def followup_rows(items: Sequence[ActionItem]) -> list[str]:
    """Done items with their commit, then pending items automation will not take."""
    rows = [
        f"| {local(item.done_at):%Y-%m-%d} | {escape_cell(item.action)} | {item.priority} | "
        f"{item.type} | {_commit_cell(item)} | {escape_cell(item.implemented_by) or '—'} |"
        for item in items
        if item.status == ActionStatus.DONE and item.done_at is not None
    ]
    rows += [
        f"| — | {escape_cell(item.action)} | {item.priority} | {item.type} | — | {NEEDS_REVIEW} |"
        for item in items
        if item.is_pending and not item.safe
    ]
    return rows


def section_markdown(text: str) -> str:
    """A section as people wrote it, unable to add headings or tables."""
    return escape_block(text.strip()) or NOT_WRITTEN


def chain_markdown(steps: Sequence[str]) -> str:
    return "\n".join(f"{number}. {escape_line(step)}" for number, step in enumerate(steps, 1))


def _section(heading: str, markdown: str) -> str:
    return f"## {heading}\n\n{markdown or NOT_WRITTEN}\n"


def _facts(post_mortem: PostMortem, *, public: bool) -> list[str]:
    started, ended = local(post_mortem.started_at), local(post_mortem.ended_at)
    severity = Severity(post_mortem.severity)
    facts = [
        f"- **Date:** {started:%Y-%m-%d}",
        f"- **Duration:** {format_duration(post_mortem.duration)} ({format_span(started, ended)})",
        f"- **Severity:** {severity.label} ({severity.value})",
        f"- **Affected services:** {escape_line(post_mortem.affected_services)}",
    ]
    if public:
        return facts  # no incident number, workflow status or people
    facts += [
        f"- **Incident:** #{post_mortem.incident_id}",
        f"- **Status:** {post_mortem.get_status_display()}"
        + (
            f" ({local(post_mortem.published_at):%Y-%m-%d})"
            if post_mortem.published_at is not None
            else ""
        ),
    ]
    if post_mortem.owner is not None:
        facts.append(f"- **Owner:** {post_mortem.owner.get_username()}")
    return facts


def postmortem_markdown(
    post_mortem: PostMortem, items: Sequence[ActionItem], *, public: bool = False
) -> str:
    """The whole document, or (``public``) only what is written for publication.

    The public document is what anyone may read: the title, the facts without
    people, and the sections in ``PUBLIC_SECTIONS``. It leaves out the
    timeline (internal notes, names, host names from monitoring), the owner
    and the Follow-up Implementation table (who implemented what). Both keep
    the Prevention Plan table, so both parse to the same TODO JSON.
    """
    written = [
        ("Summary", section_markdown(post_mortem.summary)),
        ("Impact", section_markdown(post_mortem.impact)),
        ("Timeline", section_markdown(post_mortem.timeline)),
        ("Root Cause Chain", chain_markdown(post_mortem.root_cause_chain)),
        ("Lessons Learned", section_markdown(post_mortem.lessons)),
    ]
    sections = [
        _section(heading, markdown)
        for heading, markdown in written
        if not public or heading in PUBLIC_SECTIONS
    ]
    parts = [
        f"# {escape_line(post_mortem.title)}\n",
        "\n".join(_facts(post_mortem, public=public)) + "\n",
        *sections,
        "## Prevention Plan\n\n" + "\n".join([PREVENTION_HEADER, *prevention_rows(items)]) + "\n",
    ]
    if not public:
        parts.append(
            "## Follow-up Implementation\n\n"
            + "\n".join([FOLLOWUP_HEADER, *followup_rows(items)])
            + "\n"
        )
    return "\n".join(parts)


def todo_json(post_mortem: PostMortem, items: Sequence[ActionItem]) -> dict[str, Any]:
    """The parser's JSON for a post-mortem in the database.

    Same shape as ``parse_postmortem_todos`` on its exported file (``file`` is
    that file's name), plus each item's ``id`` and the ``done_url`` to POST
    the follow-up to.
    """
    report = todo_report(export_filename(post_mortem), items)
    pending = [item for item in items if item.is_pending]
    for key, safe in (("todos", True), ("skipped", False)):
        chosen = [item for item in pending if item.safe == safe]
        for entry, item in zip(report[key], chosen, strict=True):
            entry["id"] = item.pk
            entry["done_url"] = settings.BASE_URL + reverse(
                "postmortem-action-done", args=[post_mortem.pk, item.pk]
            )
    return report
