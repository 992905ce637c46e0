"""GET / — the open-incidents dashboard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from time_machine import TimeMachineFixture

from incidents import services
from incidents.models import Incident, Service
from tests.factories import IncidentFactory, ServiceFactory

pytestmark = pytest.mark.django_db


def titles(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [incident.title for incident in response.context["page"].object_list]


def test_anonymous_visitors_are_sent_to_log_in(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/login?next=/"


def test_open_incidents_are_listed_most_severe_first_then_oldest_first(
    alice_client: Client, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(datetime(2026, 11, 23, 3, 0, tzinfo=UTC), tick=False)
    IncidentFactory(title="old warning", severity="warning")
    time_machine.shift(timedelta(minutes=1))
    IncidentFactory(title="new critical", severity="critical")
    time_machine.shift(timedelta(minutes=1))
    IncidentFactory(title="info", severity="info")
    time_machine.shift(timedelta(minutes=1))
    IncidentFactory(title="newer warning", severity="warning")
    time_machine.shift(timedelta(minutes=1))
    services.resolve_incident(IncidentFactory(title="fixed", severity="critical"), actor=None)

    response = alice_client.get("/")
    assert response.status_code == 200
    assert titles(response) == ["new critical", "old warning", "newer warning", "info"]
    counts = {severity.value: n for severity, n in response.context["counts"]}
    assert counts == {"critical": 1, "error": 0, "warning": 2, "info": 1}
    html = response.content.decode()
    listing = html.split('id="incident-list"', 1)[1].split("</section>", 1)[0]
    assert "SEV1" in listing
    assert "fixed" not in listing  # resolved: only in the post-mortem suggestions below
    assert "Resolved this week, no post-mortem yet" in html


def test_filters_narrow_the_list_and_work_without_javascript(alice_client: Client) -> None:
    db = ServiceFactory(name="Database", slug="db")
    IncidentFactory(title="replica lag", service=db, severity="warning")
    acked = IncidentFactory(title="checkout 502", severity="critical")
    services.acknowledge_incident(acked, actor=None)
    IncidentFactory(title="slow search", severity="warning", dedup_key="search-latency")

    assert titles(alice_client.get("/?service=db")) == ["replica lag"]
    assert titles(alice_client.get("/?severity=critical")) == ["checkout 502"]
    assert titles(alice_client.get("/?status=acknowledged")) == ["checkout 502"]
    assert titles(alice_client.get("/?q=CHECKOUT")) == ["checkout 502"]
    assert titles(alice_client.get("/?q=search-latency")) == ["slow search"]
    assert titles(alice_client.get(f"/?q=%23{acked.pk}")) == ["checkout 502"]
    # The form shows the filters in force.
    html = alice_client.get("/?service=db&severity=critical&status=acknowledged").content.decode()
    assert '<option value="db" selected>Database</option>' in html
    assert '<option value="critical" selected>SEV1 · critical</option>' in html
    assert '<option value="acknowledged" selected>Acknowledged</option>' in html
    assert html.count(" selected>") == 3


def test_an_unknown_filter_value_still_shows_the_incidents(alice_client: Client) -> None:
    IncidentFactory(title="still here")
    response = alice_client.get("/?service=deleted-service&severity=bogus")
    assert response.status_code == 200
    assert titles(response) == ["still here"]


def test_the_htmx_refresh_returns_only_the_list(alice_client: Client) -> None:
    IncidentFactory(title="visible")
    response = alice_client.get(
        "/?severity=error", headers={"HX-Request": "true", "HX-Target": "incident-list"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert '<section id="incident-list"' in html
    assert "visible" in html
    assert "<html" not in html
    # The counts and the title change with the list: swapped out of band.
    assert '<section id="severity-counts" class="summary"' in html
    assert 'hx-swap-oob="true"' in html
    assert html.lstrip().startswith("<title>(1) Open incidents · triage</title>")
    # The list keeps polling with the same filters.
    assert 'hx-get="/?severity=error"' in html


def test_long_lists_are_paginated(alice_client: Client, web: Service) -> None:
    for n in range(30):
        IncidentFactory(title=f"incident {n}", service=web)
    first = alice_client.get("/")
    second = alice_client.get("/?page=2")
    assert len(titles(first)) == 25
    assert len(titles(second)) == 5
    assert "Page 1 of 2" in first.content.decode()


def _queries_for_dashboard(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/").status_code == 200
    return len(queries)


def test_the_dashboard_runs_the_same_queries_for_5_or_500_incidents(
    alice_client: Client,
) -> None:
    service = ServiceFactory()
    Incident.objects.bulk_create(
        Incident(
            service=service,
            title=f"bulk {n}",
            severity=["critical", "error", "warning", "info"][n % 4],
            opened_at=datetime(2026, 11, 23, tzinfo=UTC) + timedelta(seconds=n),
        )
        for n in range(5)
    )
    few = _queries_for_dashboard(alice_client)
    Incident.objects.bulk_create(
        Incident(
            service=ServiceFactory(),
            title=f"more {n}",
            severity="error",
            opened_at=datetime(2026, 11, 23, tzinfo=UTC) + timedelta(seconds=n),
        )
        for n in range(495)
    )
    assert Incident.objects.count() == 500
    many = _queries_for_dashboard(alice_client)
    assert few == many
    assert many <= 8


def test_a_row_shows_the_incident_escaped(alice_client: Client, alice: User) -> None:
    service = ServiceFactory(name="<b>Payments</b>")
    incident = IncidentFactory(
        title='<script>alert("x")</script> & "quotes"', severity="error", service=service
    )
    services.acknowledge_incident(incident, actor=alice)
    incident.timeline.create(
        kind="paged", data={"paged": ["<i>ana</i>", "o'brien"]}, created_at=incident.opened_at
    )
    alice.username = "<u>alice</u>"
    alice.save()

    html = alice_client.get("/").content.decode()
    row = html.split(f'data-incident="{incident.pk}"', 1)[1].split("</tr>", 1)[0]
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;quotes&quot;" in row
    assert "&lt;b&gt;Payments&lt;/b&gt;" in row
    assert f'href="/incidents/{incident.pk}">#{incident.pk}</a>' in row
    assert 'class="badge sev-error" title="error">SEV2</span>' in row
    assert (
        '<span class="status acknowledged">Acknowledged</span> <small>by &lt;u&gt;alice&lt;/u&gt;'
        in row
    )
    assert (
        '<td class="reach"><span class="reach-paged" title="&lt;i&gt;ana&lt;/i&gt;: paged">'
        '&lt;i&gt;ana&lt;/i&gt;</span>, <span class="reach-paged" title="o&#x27;brien: paged">'
        "o&#x27;brien</span></td>" in row
    )
    assert f'datetime="{incident.opened_at.isoformat()}" data-age' in row
    # The service filter offers it escaped too.
    assert f'<option value="{service.slug}">&lt;b&gt;Payments&lt;/b&gt;</option>' in html
    assert "<b>Payments</b>" not in html
