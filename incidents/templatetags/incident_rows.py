"""``{% incident_rows incidents incident_url %}``: the dashboard's table rows
(and ``{% options %}``, its filters' options).

Written in Python instead of the template language on purpose: the list is
re-rendered every few seconds for every responder, and the template engine
spent more time on its 25 rows (≈ 17 variable lookups, filters and method
calls each) than the database spent on the whole page. Then ``format_html``
was a fifth of the page: Django's ``escape`` is the standard library's
``html.escape`` behind a lazy-string check, paid 400 times per page. So every
string below goes through ``html.escape`` itself (the same characters:
``& < > " '``); integers and ISO times carry no markup. The escaping test in
tests/test_dashboard.py puts markup in every text a row and an option show.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from django import template
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from incidents.models import Severity, Status
from incidents.selectors import DashboardRow, NextStep, PersonReach

register = template.Library()

SEVERITY_LABELS = {value: escape(label) for value, label in Severity.choices}
STATUS_LABELS = {value: escape(label) for value, label in Status.choices}


def _row(incident: DashboardRow, incident_url: str) -> str:
    pk = int(incident.pk)
    url = escape(f"{incident_url}{pk}")
    status = escape(incident.status)
    severity = escape(incident.severity)
    opened = incident.opened_at.isoformat()
    acknowledged = (
        f" <small>by {escape(incident.acknowledged_by)}</small>"
        if incident.acknowledged_by is not None
        else ""
    )
    # reach and next_step: set by the view from the paging state and pages.
    paged = _reach(incident.reach) if incident.reach else escape(", ".join(incident.paged)) or "—"
    flag = ""
    row_class = f"status-{status}"
    if incident.nobody_reached_at is not None and incident.status == "triggered":
        flag = ' <strong class="nobody-reached">nobody reached</strong>'
        row_class += " nobody-reached"
    return (
        f'<tr class="{row_class}" data-incident="{pk}">'
        f'<td><span class="badge sev-{severity}" title="{severity}">'
        f"{SEVERITY_LABELS.get(incident.severity, severity)}</span></td>"
        f'<td><a href="{url}">#{pk}</a></td>'
        f'<td class="title"><a href="{url}">{escape(incident.title)}</a></td>'
        f"<td>{escape(incident.service_name)}</td>"
        f'<td><time datetime="{opened}" data-age>{opened}</time></td>'
        f'<td><span class="status {status}">{STATUS_LABELS.get(incident.status, status)}</span>'
        f"{acknowledged}{flag}</td>"
        f'<td class="reach">{paged}</td>'
        f'<td class="next">{next_step(incident.next_step)}</td>'
        "</tr>\n"
    )


def _reach(people: list[PersonReach]) -> str:
    """ "alice ✓ ntfy, bob ✗ no contact method", each with its whole story as a tooltip."""
    return ", ".join(
        f'<span class="reach-{escape(p.state)}" title="{escape(p.person)}: '
        f'{escape(p.sentence)}">{escape(p.person)}'
        f"{' ' + escape(p.short) if p.short else ''}</span>"
        for p in people
    )


def next_step(step: NextStep | None) -> str:
    """ "next: level 2 — bob, in 4 min" with a live countdown, or "—"."""
    if step is None:
        return "—"
    if step.at is None:
        return escape(step.text)
    at = step.at.isoformat()
    left = max(0, round((step.at - timezone.now()).total_seconds() / 60))
    return (
        f'{escape(step.text)} <time datetime="{at}" data-countdown>in {left} min</time>'
        f"{escape(step.after)}"
    )


@register.simple_tag
def next_step_html(step: NextStep | None) -> SafeString:
    return _escaped(next_step(step))


@register.simple_tag
def reach_html(people: list[PersonReach]) -> SafeString:
    return _escaped(_reach(people) or "—")


def _escaped(html: str) -> SafeString:
    """Markup this module built, every value in it escaped as it went in."""
    # Safe: _row and options escape every string they put in (see the docstring above).
    return mark_safe(html)  # noqa: S308  # nosec B308 B703


@register.simple_tag
def incident_rows(incidents: Iterable[DashboardRow], incident_url: str) -> SafeString:
    return _escaped("".join(_row(incident, incident_url) for incident in incidents))


@register.simple_tag
def options(choices: Iterable[tuple[str, str]], selected: str) -> SafeString:
    """``{% options choices selected %}``: a select's options, ``selected`` marked.
    (Django's widget templates cost more than the rest of the dashboard.)"""
    return _escaped(
        "".join(
            f'<option value="{escape(value)}"{" selected" if value == selected else ""}>'
            f"{escape(label)}</option>"
            for value, label in choices
        )
    )
