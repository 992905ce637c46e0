"""The dashboard's hand-written SQL (incidents.selectors) against the ORM.

The dashboard reads its list with SQL written out for speed. These tests hold
it to what the ORM would answer for the same filters (same incidents, same
order, same counts), and check that its first page is read from the
dashboard index instead of sorting every open incident.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone
from time_machine import TimeMachineFixture

from incidents import selectors, services
from incidents.models import (
    NOBODY_REACHED_LAST,
    OPEN_STATUSES,
    SEVERITY_RANK,
    Incident,
    Service,
    Severity,
)
from postmortems.selectors import SUGGESTION_LIMIT, SUGGESTION_WINDOW, postmortem_suggestions
from tests.factories import IncidentFactory, ServiceFactory
from tests.postmortem_factories import postmortem, resolved_incident

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
TITLES = ["CPU at 100% on db-1", "disk a_b full", "axb latency", "Checkout 502", "cpu 1000 steal"]


def orm(filters: selectors.IncidentFilter) -> QuerySet[Incident]:
    """The specification: the same read in the ORM."""
    incidents = Incident.objects.filter(status__in=OPEN_STATUSES)
    if filters.service is not None:
        incidents = incidents.filter(service=filters.service)
    if filters.severity:
        incidents = incidents.filter(severity=filters.severity)
    if filters.status:
        incidents = incidents.filter(status=filters.status)
    term = filters.q.strip()
    if term:
        match = Q(title__icontains=term) | Q(dedup_key=term)
        number = term.lstrip("#")
        if number.isascii() and number.isdigit() and int(number) < 2**63:
            match |= Q(pk=int(number))
        incidents = incidents.filter(match)
    return incidents.alias(rank=SEVERITY_RANK, reached=NOBODY_REACHED_LAST).order_by(
        "rank", "reached", "opened_at", "id"
    )


@pytest.fixture
def varied() -> list[Service]:
    """70 incidents of every severity and status over three services, some
    opened at the same instant (the id breaks the tie)."""
    services_ = [ServiceFactory(name=f"svc {n}", slug=f"svc-{n}") for n in range(3)]
    for n in range(70):
        # Strides prime to each list's length mix the attributes up.
        incident = IncidentFactory(
            service=services_[n * 7 % 3],
            severity=Severity.values[n * 3 % 4],
            title=f"{TITLES[n * 3 % 5]} #{n}",
            dedup_key=f"key-{n}" if n % 2 else "",
        )
        # Opened out of id order, three at a time at the same instant.
        opened = T0 + timedelta(seconds=(n * 11 % 70) // 3)
        Incident.objects.filter(pk=incident.pk).update(opened_at=opened)
        if n % 5 == 3:
            # Nobody could be reached: first within its severity.
            Incident.objects.filter(pk=incident.pk).update(nobody_reached_at=opened)
        if n % 4 == 1:
            services.acknowledge_incident(incident, actor=None)
        elif n % 7 == 2:
            services.resolve_incident(incident, actor=None)
    return services_


def filter_cases(services_: list[Service]) -> list[selectors.IncidentFilter]:
    some = Incident.objects.filter(status__in=OPEN_STATUSES).order_by("pk").first()
    assert some is not None
    F = selectors.IncidentFilter
    return [
        F(),
        F(service=services_[1]),
        F(severity="critical"),
        F(status="acknowledged"),
        F(service=services_[0], severity="warning", status="triggered"),
        F(q="cpu"),
        F(q="  CPU  "),
        F(q="100%"),  # a literal percent sign, not "anything"
        F(q="a_b"),  # a literal underscore: "axb" does not match
        F(q="key-3"),  # a dedup key, exactly
        F(q=f"#{some.pk}"),
        F(q=str(some.pk)),
        F(q="#99999999999999999999999"),  # beyond bigint: no match, no error
        F(q="#²"),  # a digit to str.isdigit, not to int()
        F(q="\\"),
        F(severity="error", q="latency"),
    ]


def test_the_sql_lists_what_the_orm_lists_in_the_same_order(varied: list[Service]) -> None:
    for filters in filter_cases(varied):
        expected = list(orm(filters).values_list("pk", flat=True))
        listed = selectors.DashboardList(filters)
        assert listed.count() == len(expected), filters
        first, second = listed[0:25], listed[25:50]
        assert [row.pk for row in first + second] == expected[:50], filters
    counts = selectors.open_counts_by_severity()
    for severity in Severity.values:
        assert counts[severity] == orm(selectors.IncidentFilter(severity=severity)).count()


def test_a_row_carries_what_the_dashboard_shows(web: Service) -> None:
    incident = IncidentFactory(service=web, title="replica lag", severity="warning")
    services.acknowledge_incident(incident, actor=None)
    for minutes, data in [
        (1, {"paged": ["ana"], "level": 1}),
        (2, {"paged": ["ana", "ben"], "level": 2}),
        (3, {"note": "not a page list"}),
        (4, {"paged": "not a list either"}),
    ]:
        incident.timeline.create(
            kind="paged", data=data, created_at=incident.opened_at + timedelta(minutes=minutes)
        )

    (row,) = selectors.DashboardList(selectors.IncidentFilter())[0:25]
    incident.refresh_from_db()
    assert (row.pk, row.title, row.severity, row.status) == (
        incident.pk,
        "replica lag",
        "warning",
        "acknowledged",
    )
    assert row.opened_at == incident.opened_at
    assert row.service_name == web.name
    assert row.acknowledged_by is None  # acknowledged by the system
    assert row.paged == ["ana", "ben"]  # the latest event that names who was paged


def _plan(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        document = cursor.fetchone()[0]
    plan: dict[str, Any] = (json.loads(document) if isinstance(document, str) else document)[0]
    return plan["Plan"]


def _nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [node]
    for child in node.get("Plans", []):
        found += _nodes(child)
    return found


@pytest.mark.parametrize("severity", ["", "critical"])
def test_the_first_page_is_read_from_the_index_without_sorting_every_open_incident(
    web: Service, severity: str
) -> None:
    Incident.objects.bulk_create(
        Incident(
            service=web,
            title=f"bulk {n}",
            severity=Severity.values[n % 4],
            opened_at=T0 + timedelta(seconds=n),
        )
        for n in range(3000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE incidents_incident")
    listed = selectors.DashboardList(selectors.IncidentFilter(severity=severity))
    plan = _plan(selectors._PAGE_SQL, {**listed._params, "limit": 25, "offset": 0})
    limit = next(node for node in _nodes(plan) if node["Node Type"] == "Limit")
    below = _nodes(limit)
    assert any(node.get("Index Name") == "incident_open_dashboard" for node in below)
    assert not any(node["Node Type"] in ("Sort", "Incremental Sort") for node in below)


def test_post_mortem_suggestions_are_what_the_orm_finds(
    web: Service, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(T0, tick=False)
    for n in range(9):
        incident = resolved_incident(service=web, title=f"outage {n}")
        if n in (2, 7):
            postmortem(incident)
        time_machine.shift(timedelta(days=1) if n == 0 else timedelta(hours=1))
    resolved_incident(service=web, title="latest outage")

    expected = list(
        Incident.objects.filter(
            status="resolved",
            resolved_at__gte=timezone.now() - SUGGESTION_WINDOW,
            postmortem__isnull=True,
        )
        .order_by("-resolved_at", "-pk")
        .values_list("pk", "title", "service__name", "resolved_at")[:SUGGESTION_LIMIT]
    )
    assert len(expected) == SUGGESTION_LIMIT
    suggestions = postmortem_suggestions()
    assert [(s.pk, s.title, s.service_name, s.resolved_at) for s in suggestions] == expected
    # Outages 1 to 8 were resolved an hour apart from T0 + 1 day; a week
    # after 5:30 past that, 7 (written up), 8 and the latest are in the window.
    later = postmortem_suggestions(now=T0 + timedelta(days=8, hours=5, minutes=30))
    assert [s.title for s in later] == ["latest outage", "outage 8"]
