"""The MCP server's search_incidents: past incidents for an agent, with the
dashboard's and /v1's filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from redis import Redis

from incidents import services
from incidents.models import Service
from integrations.mcp_server import Principal, acting_as, build_server
from tests.factories import IncidentFactory
from tests.test_integrations_mcp import call

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_an_agent_finds_a_resolved_incident_by_words_and_day(
    alice: User, web: Service, redis: Redis
) -> None:
    old = IncidentFactory(title="Disk full on db1", service=web, now=T0)
    services.resolve_incident(old, actor=None, now=T0 + timedelta(hours=1))
    IncidentFactory(title="Disk full on db2", service=web, now=T0 + timedelta(days=3))
    server = build_server()
    with acting_as(Principal(user=alice, can_write=False)):
        every = call(server, "search_incidents", {"q": "disk full"})
        resolved = call(server, "search_incidents", {"q": "disk", "status": "resolved"})
        that_day = call(
            server, "search_incidents", {"opened_from": "2026-11-23", "opened_to": "2026-11-23"}
        )
        wrong = call(server, "search_incidents", {"opened_from": "2026-13-01"})
        backwards = call(
            server, "search_incidents", {"opened_from": "2026-11-23", "opened_to": "2026-11-01"}
        )
    assert [i["title"] for i in every.structured_content["incidents"]] == [
        "Disk full on db2",
        "Disk full on db1",
    ]
    assert [i["title"] for i in resolved.structured_content["incidents"]] == ["Disk full on db1"]
    assert [i["title"] for i in that_day.structured_content["incidents"]] == ["Disk full on db2"]
    assert wrong.is_error
    assert "not a date such as 2026-11-30" in wrong.content[0].text
    assert backwards.is_error


def test_an_agent_sees_how_long_a_past_incident_took(
    alice: User, web: Service, redis: Redis
) -> None:
    old = IncidentFactory(title="Disk full on db1", service=web, now=T0)
    services.acknowledge_incident(old, actor=None, now=T0 + timedelta(minutes=2))
    services.resolve_incident(old, actor=None, now=T0 + timedelta(hours=1))
    IncidentFactory(title="Disk full on db2", service=web, now=T0 + timedelta(days=3))
    server = build_server()
    with acting_as(Principal(user=alice, can_write=False)):
        found = call(server, "search_incidents", {"q": "disk full"})
    times = {
        i["title"]: (i["time_to_acknowledge"], i["time_to_resolve"])
        for i in found.structured_content["incidents"]
    }
    assert times == {"Disk full on db1": (120.0, 3600.0), "Disk full on db2": (None, None)}
