"""GET / with the history filters: resolved and all incidents, search by
number whatever the status, a date range, and how long each one took."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from redis import Redis

from incidents import services
from incidents.models import Incident, Service
from tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def titles(response: Any) -> list[str]:
    return [incident.title for incident in response.context["page"].object_list]


def listing(response: Any) -> str:
    html: str = response.content.decode()
    return html.split('id="incident-list"', 1)[1].split("</section>", 1)[0]


def resolved(title: str, service: Service, *, at: datetime, ack: int | None, fix: int) -> Incident:
    """An incident opened ``at``, acknowledged ``ack`` minutes later (or never),
    resolved ``fix`` minutes after opening."""
    incident = IncidentFactory(title=title, service=service, now=at)
    if ack is not None:
        services.acknowledge_incident(incident, actor=None, now=at + timedelta(minutes=ack))
    return services.resolve_incident(incident, actor=None, now=at + timedelta(minutes=fix))


@pytest.fixture
def history(web: Service) -> dict[str, Incident]:
    return {
        "older": resolved("disk full on db1", web, at=T0, ack=4, fix=83),
        "newer": resolved("cert expired", web, at=T0 + timedelta(days=2), ack=None, fix=30),
        "open": IncidentFactory(title="checkout 502", service=web, now=T0 + timedelta(days=1)),
    }


def test_resolved_lists_only_resolved_incidents_newest_first_with_their_times(
    alice_client: Client, history: dict[str, Incident]
) -> None:
    response = alice_client.get("/?status=resolved")
    assert response.status_code == 200
    assert titles(response) == ["cert expired", "disk full on db1"]
    rows = listing(response)
    assert "acknowledged in 4m · resolved in 1h 23m" in rows
    assert "not acknowledged · resolved in 30m" in rows
    assert '<option value="resolved" selected>Resolved</option>' in response.content.decode()


def test_all_lists_open_and_resolved_incidents_newest_first(
    alice_client: Client, history: dict[str, Incident]
) -> None:
    response = alice_client.get("/?status=all")
    assert titles(response) == ["cert expired", "checkout 502", "disk full on db1"]
    assert '<option value="all" selected>All</option>' in response.content.decode()


def test_a_number_finds_a_resolved_incident_from_the_open_view(
    alice_client: Client, history: dict[str, Incident]
) -> None:
    number = history["older"].pk
    assert titles(alice_client.get("/", {"q": f"#{number}"})) == ["disk full on db1"]
    assert titles(alice_client.get("/", {"q": str(number)})) == ["disk full on db1"]


def test_words_search_open_ones_first_and_offer_to_search_them_all(
    alice_client: Client, history: dict[str, Incident]
) -> None:
    response = alice_client.get("/", {"q": "cert"})
    assert titles(response) == []
    assert "No open incident matches these filters." in listing(response)
    assert "status=all" in listing(response)
    assert titles(alice_client.get("/", {"q": "CERT", "status": "all"})) == ["cert expired"]
    empty = alice_client.get("/", {"q": "nothing like it", "status": "resolved"})
    assert "No resolved incident matches these filters." in listing(empty)


def test_the_date_range_is_whole_days_in_the_displayed_zone(
    alice_client: Client, web: Service, settings: Any
) -> None:
    settings.TIME_ZONE = "Europe/Berlin"
    # 23:30 UTC on the 29th is 00:30 on the 30th in Berlin.
    late = resolved("late", web, at=datetime(2026, 11, 29, 23, 30, tzinfo=UTC), ack=1, fix=2)
    resolved("earlier", web, at=datetime(2026, 11, 29, 22, 30, tzinfo=UTC), ack=1, fix=2)
    resolved("next day", web, at=datetime(2026, 11, 30, 23, 30, tzinfo=UTC), ack=1, fix=2)

    on_30th = alice_client.get("/?status=all&from=2026-11-30&to=2026-11-30")
    assert titles(on_30th) == [late.title]
    assert titles(alice_client.get("/?status=all&to=2026-11-29")) == ["earlier"]
    assert titles(alice_client.get("/?status=all&from=2026-12-01")) == ["next day"]
    html = on_30th.content.decode()
    assert 'name="from" value="2026-11-30"' in html
    assert 'name="to" value="2026-11-30"' in html


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=resolvd", "Status ignored: use one of triggered, acknowledged, resolved, all."),
        ("from=2026-13-01", "Opened from ignored: use a date such as 2026-11-30."),
        ("from=0001-01-01", "Opened from ignored: use a year from 1970 to 9998."),
        ("to=9999-12-31", "Opened to ignored: use a year from 1970 to 9998."),
        (
            "from=2026-11-01&to=2026-10-01",
            "Opened to ignored: the end date is before the start date.",
        ),
        ("service=gone", "Service ignored: no service with that slug."),
    ],
)
def test_an_invalid_filter_is_named_and_the_others_still_apply(
    alice_client: Client, history: dict[str, Incident], query: str, message: str
) -> None:
    response = alice_client.get(f"/?{query}")
    assert response.status_code == 200
    assert message in listing(response)
    assert titles(response) == ["checkout 502"]  # the open view, as if not asked


def test_the_htmx_refresh_keeps_the_history_and_its_message(
    alice_client: Client, history: dict[str, Incident]
) -> None:
    response = alice_client.get(
        "/?status=resolved&from=nope",
        headers={"HX-Request": "true", "HX-Target": "incident-list"},
    )
    assert response.status_code == 200
    rows = listing(response)
    assert "cert expired" in rows
    assert "checkout 502" not in rows
    assert "Opened from ignored" in rows


def test_a_cached_history_list_shows_an_incident_resolved_since(
    alice_client: Client, history: dict[str, Incident], redis: Redis
) -> None:
    assert titles(alice_client.get("/?status=resolved")) == ["cert expired", "disk full on db1"]
    services.resolve_incident(history["open"], actor=None, now=T0 + timedelta(days=1, hours=1))
    after = alice_client.get("/?status=resolved")
    assert titles(after) == ["cert expired", "checkout 502", "disk full on db1"]


def test_a_long_history_is_counted_up_to_a_limit(
    alice_client: Client, history: dict[str, Incident], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("incidents.selectors.HISTORY_COUNT_LIMIT", 2)
    monkeypatch.setattr("incidents.views.PAGE_SIZE", 1)
    html = alice_client.get("/?status=all").content.decode()
    assert "Page 1 of 2+ · 2+ incidents (narrow by date to reach older ones)" in html
    exact = alice_client.get("/?status=resolved").content.decode()
    assert "Page 1 of 2 · 2 incidents</span>" in exact
