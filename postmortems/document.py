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
NEEDS_REVIEW = "Needs human review"


def local(value: datetime) -> datetime:
    return timezone.localtime(value)


def export_filename(post_mortem: PostMortem) -> str:
    """``YYYY-MM-DD-slug.md``, dated by the incident's start in TIME_ZONE."""
    return f"{local(post_mortem.started_at):%Y-%m-%d}-{post_mortem.slug}.md"


def format_duration(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds()) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


def _commit_cell(item: ActionItem) -> str:
    if item.commit and item.link:
        return f"[`{item.commit[:12]}`]({escape_cell(item.link)})"
    if item.commit:
        return f"`{item.commit[:12]}`"
    if item.link:
        return f"<{escape_cell(item.link)}>"
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


def _section(heading: str, text: str) -> str:
    return f"## {heading}\n\n{text.strip() or NOT_WRITTEN}\n"


def postmortem_markdown(post_mortem: PostMortem, items: Sequence[ActionItem]) -> str:
    started, ended = local(post_mortem.started_at), local(post_mortem.ended_at)
    severity = Severity(post_mortem.severity)
    facts = [
        f"- **Date:** {started:%Y-%m-%d}",
        f"- **Duration:** {format_duration(post_mortem.duration)} "
        f"({started:%Y-%m-%d %H:%M} to {ended:%Y-%m-%d %H:%M} {started:%Z})",
        f"- **Severity:** {severity.label} ({severity.value})",
        f"- **Affected services:** {post_mortem.affected_services}",
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
    chain = "\n".join(
        f"{number}. {step}" for number, step in enumerate(post_mortem.root_cause_chain, 1)
    )
    parts = [
        f"# {post_mortem.title}\n",
        "\n".join(facts) + "\n",
        _section("Summary", post_mortem.summary),
        _section("Impact", post_mortem.impact),
        _section("Timeline", post_mortem.timeline),
        _section("Root Cause Chain", chain),
        _section("Lessons Learned", post_mortem.lessons),
        "## Prevention Plan\n\n" + "\n".join([PREVENTION_HEADER, *prevention_rows(items)]) + "\n",
        "## Follow-up Implementation\n\n"
        + "\n".join([FOLLOWUP_HEADER, *followup_rows(items)])
        + "\n",
    ]
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
