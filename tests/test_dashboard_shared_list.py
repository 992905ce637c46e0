"""The dashboard's unfiltered list and its counts are built once per process
(``incidents.selectors._open_rows``, ``_open_counts``) and cloned for every
read: each read still sees what is open at that moment."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client

from incidents import selectors, services
from incidents.models import Service
from tests.factories import IncidentFactory, ServiceFactory

pytestmark = pytest.mark.django_db


def titles(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [incident.title for incident in response.context["page"].object_list]


def counts(response) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {severity.value: n for severity, n in response.context["counts"]}


def test_each_visit_lists_what_is_open_at_that_moment(alice_client: Client, web: Service) -> None:
    IncidentFactory(title="disk full", service=web, severity="warning")
    first = alice_client.get("/")
    assert titles(first) == ["disk full"]
    assert counts(first)["warning"] == 1

    opened = services.open_incident(service=web, title="checkout 502", severity="critical")
    services.resolve_incident(IncidentFactory(title="old news", service=web), actor=None)
    second = alice_client.get("/")
    assert titles(second) == ["checkout 502", "disk full"]
    assert counts(second) == {"critical": 1, "error": 0, "warning": 1, "info": 0}

    services.resolve_incident(opened.incident, actor=None)
    third = alice_client.get("/")
    assert titles(third) == ["disk full"]
    assert counts(third)["critical"] == 0
    # What every read clones is never evaluated itself: it holds no rows.
    assert selectors._open_rows()._result_cache is None
    assert selectors._open_counts()._result_cache is None


def test_a_filtered_visit_after_the_open_list_shows_only_its_matches(
    alice_client: Client, web: Service
) -> None:
    db = ServiceFactory(name="Database", slug="db")
    IncidentFactory(title="replica lag", service=db, severity="warning")
    IncidentFactory(title="checkout 502", service=web, severity="critical")

    assert titles(alice_client.get("/")) == ["checkout 502", "replica lag"]
    assert titles(alice_client.get("/?service=db")) == ["replica lag"]
    assert titles(alice_client.get("/?severity=critical")) == ["checkout 502"]
    assert titles(alice_client.get("/")) == ["checkout 502", "replica lag"]


def test_counting_open_incidents_needs_only_the_severity_index() -> None:
    # COUNT(*) lets PostgreSQL answer from the partial index alone; COUNT(id)
    # would read every open row from the table (an index-only scan is then
    # impossible). Reading the table is switched off so the tiny test table
    # cannot hide the difference.
    IncidentFactory(severity="critical")
    query = selectors._open_counts().all()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE incidents_incident")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        plan = query.explain()
    assert "Index Only Scan using incident_open_severity" in plan
