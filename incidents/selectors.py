"""Reads for pages and the API. Each brings its own joins, so a list costs a
fixed number of queries however many incidents it shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from incidents.models import (
    Incident,
    Service,
    Severity,
    TimelineEvent,
)
from triage.numbers import ascii_int
from triage.sql import fetch_all


@dataclass(frozen=True)
class IncidentFilter:
    service: Service | None = None
    severity: str = ""
    status: str = ""
    q: str = ""


def open_counts_by_severity() -> dict[str, int]:
    """Open incidents per severity (all severities present, zeros included)."""
    counts = dict.fromkeys(Severity.values, 0)
    counts.update(fetch_all(_COUNTS_SQL))
    return counts


def incident_detail(pk: int) -> Incident:
    """One incident with everything its page shows; raises Incident.DoesNotExist."""
    return Incident.objects.select_related(
        "service", "opened_by", "acknowledged_by", "resolved_by"
    ).get(pk=pk)


def timeline(incident: Incident) -> QuerySet[TimelineEvent]:
    return incident.timeline.select_related("actor").order_by("created_at", "pk")


def services() -> QuerySet[Service]:
    return Service.objects.order_by("name")


# The dashboard's reads, written in SQL (see triage.sql): Django's ORM spent
# about 9 ms of a 25 ms page building these queries and their model
# instances. Each statement is one constant string: filters that are not set
# fold away when PostgreSQL plans the statement with its parameter values, so
# the plans are those of the ORM queries they replace.
# tests/test_dashboard_sql.py checks both against the ORM (same rows, same
# order) and the first page's plan (the dashboard index, no sort of every
# open incident).
#
# The open statuses and the severity ranks are written out as literals: the
# partial indexes' predicate and expression only match literals, not
# parameters. The statements are whole constant strings, so no text is ever
# pasted into SQL; the filters appear twice (count and page) for that reason.
_COUNTS_SQL = """
SELECT i.severity, COUNT(*) FROM incidents_incident i
WHERE i.status IN ('triggered', 'acknowledged')
GROUP BY i.severity
"""
_COUNT_SQL = """
SELECT COUNT(*) FROM incidents_incident i
WHERE i.status IN ('triggered', 'acknowledged')
  AND (%(service)s::bigint IS NULL OR i.service_id = %(service)s)
  AND (%(severity)s = '' OR i.severity = %(severity)s)
  AND (%(status)s = '' OR i.status = %(status)s)
  AND (%(q)s = '' OR i.title ILIKE %(pattern)s OR i.dedup_key = %(q)s OR i.id = %(number)s::bigint)
"""
# Within a severity, incidents nobody could be reached for come first (the
# index has that expression too).
# The page is cut first and joined after, so a deep page does not look up the
# service, acknowledger and latest page of every incident it skips.
_PAGE_SQL = """
SELECT page.id, page.title, page.severity, page.status, page.opened_at,
       page.escalation_level, page.next_escalation_at, s.name, u.username,
       COALESCE((SELECT ARRAY(SELECT jsonb_array_elements_text(t.data -> 'paged'))
                   FROM incidents_timelineevent t
                  WHERE t.incident_id = page.id AND t.kind = 'paged'
                    AND jsonb_typeof(t.data -> 'paged') = 'array'
                  ORDER BY t.created_at DESC, t.id DESC LIMIT 1), '{}'),
       page.escalation_cycle, page.escalation_step, page.service_id,
       s.escalation_policy_id, page.nobody_reached_at
FROM (
    SELECT i.id, i.title, i.severity, i.status, i.opened_at, i.escalation_level,
           i.next_escalation_at, i.service_id, i.acknowledged_by_id,
           i.escalation_cycle, i.escalation_step, i.nobody_reached_at,
           (i.nobody_reached_at IS NULL) AS reached,
           CASE WHEN i.severity = 'critical' THEN 1 WHEN i.severity = 'error' THEN 2
                WHEN i.severity = 'warning' THEN 3 WHEN i.severity = 'info' THEN 4
                ELSE NULL END AS rank
    FROM incidents_incident i
    WHERE i.status IN ('triggered', 'acknowledged')
      AND (%(service)s::bigint IS NULL OR i.service_id = %(service)s)
      AND (%(severity)s = '' OR i.severity = %(severity)s)
      AND (%(status)s = '' OR i.status = %(status)s)
      AND (%(q)s = '' OR i.title ILIKE %(pattern)s OR i.dedup_key = %(q)s
           OR i.id = %(number)s::bigint)
    ORDER BY CASE WHEN i.severity = 'critical' THEN 1 WHEN i.severity = 'error' THEN 2
                  WHEN i.severity = 'warning' THEN 3 WHEN i.severity = 'info' THEN 4
                  ELSE NULL END,
             (i.nobody_reached_at IS NULL), i.opened_at, i.id
    LIMIT %(limit)s OFFSET %(offset)s
) page
JOIN incidents_service s ON s.id = page.service_id
LEFT JOIN auth_user u ON u.id = page.acknowledged_by_id
ORDER BY page.rank, page.reached, page.opened_at, page.id
"""
_SERVICE_CHOICES_SQL = "SELECT slug, name FROM incidents_service ORDER BY name"


@dataclass(slots=True)
class DashboardRow:
    """What one dashboard row shows."""

    pk: int
    title: str
    severity: str
    status: str
    opened_at: datetime
    escalation_level: int
    next_escalation_at: datetime | None
    service_name: str
    acknowledged_by: str | None  # username
    # The names in the latest "paged" timeline event; the view replaces them
    # (and next_escalation_at) with Redis's live paging state where it has one.
    paged: list[str]
    escalation_cycle: int
    escalation_step: int
    service_id: int
    policy_id: int | None
    nobody_reached_at: datetime | None
    # Set by the view from paging's reads: how each person paged was reached,
    # and what happens next.
    reach: list[PersonReach] = field(default_factory=list)
    next_step: NextStep | None = None


@dataclass(frozen=True, slots=True)
class PersonReach:
    """One person paged at the current level, and how far their page got."""

    person: str
    state: str  # queued, sent, failed, unreachable, cancelled, paged (no page row)
    short: str  # what the row shows after the name: "✓ ntfy", "✗ no contact method"
    sentence: str  # the whole story: "sent via ntfy at 22:01 UTC"


@dataclass(frozen=True, slots=True)
class NextStep:
    """What happens next: ``text``, then a countdown to ``at`` if any, then ``after``."""

    text: str
    at: datetime | None = None
    after: str = ""


class DashboardList:
    """The open incidents matching ``filters``, in dashboard order, as
    Django's Paginator takes them: ``count()`` is one query, a slice another."""

    def __init__(self, filters: IncidentFilter) -> None:
        term = filters.q.strip()
        self._params: dict[str, Any] = {
            "service": filters.service.pk if filters.service else None,
            "severity": filters.severity,
            "status": filters.status,
            "q": term,
            "pattern": "%" + _escape_like(term) + "%",
            "number": ascii_int(term.lstrip("#")),
        }

    def count(self) -> int:
        return int(fetch_all(_COUNT_SQL, self._params)[0][0])

    def __getitem__(self, window: slice) -> list[DashboardRow]:
        offset = window.start or 0
        params = {**self._params, "limit": window.stop - offset, "offset": offset}
        return [DashboardRow(*row) for row in fetch_all(_PAGE_SQL, params)]


def _escape_like(term: str) -> str:
    """``term`` matched literally by ILIKE (its default escape is the backslash)."""
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def service_choices() -> list[tuple[str, str]]:
    """(slug, name) of every service, by name: the dashboard's service filter."""
    return [(slug, name) for slug, name in fetch_all(_SERVICE_CHOICES_SQL)]
