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
from django.utils.safestring import SafeString, mark_safe

from incidents.models import Severity, Status
from incidents.selectors import DashboardRow

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
    # paged and next_escalation_at: set by the view from the paging state.
    paged = escape(", ".join(incident.paged)) or "—"
    next_at = incident.next_escalation_at.isoformat() if incident.next_escalation_at else ""
    countdown = f'<time datetime="{next_at}" data-countdown>{next_at}</time>' if next_at else "—"
    return (
        f'<tr class="status-{status}" data-incident="{pk}">'
        f'<td><span class="badge sev-{severity}" title="{severity}">'
        f"{SEVERITY_LABELS.get(incident.severity, severity)}</span></td>"
        f'<td><a href="{url}">#{pk}</a></td>'
        f'<td class="title"><a href="{url}">{escape(incident.title)}</a></td>'
        f"<td>{escape(incident.service_name)}</td>"
        f'<td><time datetime="{opened}" data-age>{opened}</time></td>'
        f'<td><span class="status {status}">{STATUS_LABELS.get(incident.status, status)}</span>'
        f"{acknowledged}</td>"
        f"<td>{paged}</td>"
        f"<td>{countdown}</td>"
        "</tr>\n"
    )


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
