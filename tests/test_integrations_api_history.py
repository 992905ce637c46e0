"""GET /v1/incidents with the dashboard's history filters: every status, a
date range, and clear errors for values it cannot use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client

from accounts.tokens import NewToken
from incidents import services
from incidents.models import Service
from tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)


def listed(client: Client, token: NewToken, **params: Any) -> list[str]:
    response = client.get("/v1/incidents", params, headers={"Authorization": f"Bearer {token.raw}"})
    assert response.status_code == 200, response.content
    return [item["title"] for item in response.json()["items"]]


@pytest.fixture
def three_days(web: Service) -> None:
    for day, title in enumerate(["first", "second", "third"]):
        incident = IncidentFactory(title=title, service=web, now=T0 + timedelta(days=day))
        if title != "second":
            services.resolve_incident(incident, actor=None, now=T0 + timedelta(days=day, hours=1))


def test_all_and_a_date_range_narrow_the_list(
    client: Client, read_token: NewToken, three_days: None, settings: Any
) -> None:
    assert listed(client, read_token, status="all") == ["third", "second", "first"]
    assert listed(client, read_token, status="resolved", **{"from": "2026-11-30"}) == ["third"]
    assert listed(client, read_token, to="2026-11-30") == ["second", "first"]
    # Days are the server's: 23:30 UTC on the 29th is the 30th in Berlin.
    settings.TIME_ZONE = "Europe/Berlin"
    assert listed(client, read_token, **{"from": "2026-11-30", "to": "2026-11-30"}) == ["first"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "closed"}, "status"),
        ({"from": "2026-13-01"}, "from"),
        ({"to": "0001-01-01"}, "to"),
        ({"from": "2026-12-01", "to": "2026-11-01"}, "to"),
    ],
)
def test_an_unusable_filter_is_a_problem_naming_it(
    client: Client, read_token: NewToken, params: dict[str, str], field: str
) -> None:
    response = client.get(
        "/v1/incidents", params, headers={"Authorization": f"Bearer {read_token.raw}"}
    )
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    assert field in response.json()["errors"]


def test_items_say_how_long_acknowledging_and_resolving_took(
    client: Client, read_token: NewToken, web: Service
) -> None:
    fixed = IncidentFactory(title="fixed", service=web, now=T0)
    services.acknowledge_incident(fixed, actor=None, now=T0 + timedelta(seconds=90))
    services.resolve_incident(fixed, actor=None, now=T0 + timedelta(minutes=30, seconds=0.5))
    unanswered = IncidentFactory(title="unanswered", service=web, now=T0 + timedelta(hours=1))
    services.resolve_incident(unanswered, actor=None, now=T0 + timedelta(hours=2))
    IncidentFactory(title="open", service=web, now=T0 + timedelta(hours=3))

    response = client.get(
        "/v1/incidents", {"status": "all"}, headers={"Authorization": f"Bearer {read_token.raw}"}
    )
    times = {
        item["title"]: (item["time_to_acknowledge"], item["time_to_resolve"])
        for item in response.json()["items"]
    }
    assert times == {
        "fixed": (90.0, 1800.5),
        "unanswered": (None, 3600.0),
        "open": (None, None),
    }


def test_the_openapi_document_describes_the_durations(client: Client) -> None:
    incident = client.get("/v1/openapi.json").json()["components"]["schemas"]["IncidentOut"]
    for name in ("time_to_acknowledge", "time_to_resolve"):
        assert name in incident["required"]
        assert {"type": "number"} in incident["properties"][name]["anyOf"]
        assert {"type": "null"} in incident["properties"][name]["anyOf"]
        assert "Seconds" in incident["properties"][name]["description"]
