"""POST /v2/change/enqueue: PagerDuty's change events (deploys, config
pushes), kept per service and shown as "Recent changes" on the incidents
that open in the day after them — on the page, in /v1 and over MCP."""

from __future__ import annotations

import json
import ssl
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pagerduty
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from redis import Redis

from accounts.tokens import NewToken
from incidents.models import Incident, Service
from integrations.keys import NewKey, revoke_integration
from integrations.mcp_server import Principal, acting_as, build_server
from integrations.models import ChangeEvent
from tests.factories import IncidentFactory, ServiceFactory
from tests.integration_factories import integration
from tests.test_integrations_mcp import call
from tests.tls import https_server

pytestmark = pytest.mark.django_db

CI_BUILD = "https://ci.example.org/builds/812"


@pytest.fixture
def events(web: Service, redis: Redis) -> NewKey:
    return integration(web, "events_v2")


def send(client: Client, body: Any, path: str = "/v2/change/enqueue") -> Any:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, data=data, content_type="application/json")


def change(key: str, summary: str, at: datetime | None = None, **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"summary": summary, "source": "ci"}
    if at is not None:
        payload["timestamp"] = at.isoformat()
    return {"routing_key": key, "payload": payload, **fields}


@pytest.mark.django_db(transaction=True)
def test_the_pagerduty_library_sends_change_events_as_to_pagerduty(
    tmp_path: Path, events: NewKey
) -> None:
    with https_server(tmp_path) as server:
        trust = ssl.create_default_context(cafile=str(server.ca_file))
        # Closed before the server stops: its keep-alive connection ends.
        with pagerduty.EventsApiV2Client(events.raw, base_url=server.url, verify=trust) as sender:
            _send_and_refuse(sender)


def _send_and_refuse(sender: pagerduty.EventsApiV2Client) -> None:
    sender.send_change_event(
        payload={
            "summary": "Deployed web 2.4.1",
            "source": "github-actions",
            "timestamp": "2026-11-29T21:14:03.315+0000",
            "custom_details": {"build": 812, "commit": "a1b2c3d"},
        },
        links=[{"href": CI_BUILD, "text": "Build 812"}],
    )
    recorded = ChangeEvent.objects.get()
    assert recorded.service.slug == "web"
    assert recorded.summary == "Deployed web 2.4.1"
    assert recorded.source == "github-actions"
    assert recorded.occurred_at == datetime.fromisoformat("2026-11-29T21:14:03.315+00:00")
    assert recorded.custom_details == {"build": 812, "commit": "a1b2c3d"}
    assert recorded.links == [{"href": CI_BUILD, "text": "Build 812"}]
    assert not Incident.objects.exists()  # a change pages nobody

    with pytest.raises(pagerduty.HttpError) as refused:
        sender.send_change_event(payload={"source": "github-actions"})
    assert refused.value.response.status_code == 400
    assert "'payload.summary' is missing or blank" in refused.value.response.json()["errors"]
    assert ChangeEvent.objects.count() == 1


def test_answers_are_pagerduty_s_on_both_paths(client: Client, events: NewKey) -> None:
    for path in ("/v2/change/enqueue", "/integrations/v2/change/enqueue"):
        response = send(client, change(events.raw, "Config push"), path)
        assert response.status_code == 202
        assert response.json() == {"status": "success", "message": "Change event processed"}
    assert ChangeEvent.objects.count() == 2
    before = timezone.now()
    assert ChangeEvent.objects.filter(occurred_at__lte=before).count() == 2  # no timestamp: now


def test_an_incident_shows_the_changes_to_its_service_in_the_day_before_it_opened(
    client: Client,
    alice_client: Client,
    alice: User,
    read_token: NewToken,
    events: NewKey,
    web: Service,
) -> None:
    opened = timezone.now()
    other = integration(ServiceFactory(name="Billing"), "events_v2")
    sent = [
        change(events.raw, "Config push: pool size 20", opened - timedelta(hours=23)),
        change(
            events.raw,
            "Deployed web 2.4.1",
            opened - timedelta(hours=1),
            links=[
                {"href": CI_BUILD, "text": "Build 812"},
                {"href": "javascript:alert(1)", "text": "Sneaky"},
            ],
        ),
        change(events.raw, "Too old to matter", opened - timedelta(hours=25)),
        change(events.raw, "After the incident opened", opened + timedelta(minutes=5)),
        change(other.raw, "Billing deploy", opened - timedelta(hours=1)),
    ]
    for body in sent:
        assert send(client, body).status_code == 202
    incident = IncidentFactory(service=web, title="Checkout returns 502", now=opened)
    expected = ["Deployed web 2.4.1", "Config push: pool size 20"]  # newest first

    page = alice_client.get(f"/incidents/{incident.pk}").content.decode()
    changes = page.split("<h2>Recent changes</h2>")[1]
    assert changes.index(expected[0]) < changes.index(expected[1])
    assert f'<a href="{CI_BUILD}"' in changes
    for hidden in ("Too old", "After the incident", "Billing deploy", "javascript:"):
        assert hidden not in page

    v1 = client.get(
        f"/v1/incidents/{incident.pk}", headers={"Authorization": f"Bearer {read_token.raw}"}
    ).json()
    assert [item["summary"] for item in v1["recent_changes"]] == expected
    assert v1["recent_changes"][0]["links"] == [{"href": CI_BUILD, "text": "Build 812"}]
    assert v1["recent_changes"][0]["source"] == "ci"

    with acting_as(Principal(user=alice, can_write=False)):
        tool = call(build_server(), "get_incident", {"incident_id": incident.pk})
    assert [item["summary"] for item in tool.structured_content["recent_changes"]] == expected


def test_an_incident_without_recent_changes_says_so(alice_client: Client, web: Service) -> None:
    incident = IncidentFactory(service=web)
    page = alice_client.get(f"/incidents/{incident.pk}").content.decode()
    assert "No changes to Web shop in the 24 hours before this incident opened" in page


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"payload": {"source": "ci"}}, "'payload.summary' is missing or blank"),
        ({"payload": "deployed"}, "'payload' is missing or not an object"),
        (
            {"payload": {"summary": "x", "timestamp": "yesterday"}},
            "'payload.timestamp' is not an ISO 8601 time: 'yesterday'",
        ),
        ({"payload": {"summary": "x", "custom_details": [1]}}, "must be an object"),
        ({"payload": {"summary": "x"}, "links": [{"text": "no href"}]}, "'links[0].href'"),
        ({"payload": {"summary": "x"}, "links": "https://ci"}, "'links' must be a list"),
        ({"payload": {"summary": "x", "source": 5}}, "'payload.source' must be a string"),
    ],
)
def test_an_invalid_change_is_a_400_in_pagerduty_shape_and_writes_nothing(
    client: Client, events: NewKey, body: dict[str, Any], error: str
) -> None:
    response = send(client, {"routing_key": events.raw, **body})
    assert response.status_code == 400
    assert response.json()["status"] == "invalid event"
    assert any(error in message for message in response.json()["errors"]), response.json()
    assert not ChangeEvent.objects.exists()


def test_unknown_revoked_and_other_kinds_of_keys_are_refused(
    client: Client, events: NewKey, web: Service
) -> None:
    heartbeat = integration(web, "heartbeat")
    revoked = integration(web, "events_v2")
    revoke_integration(revoked.integration)
    for key in ("0" * 32, heartbeat.raw, revoked.raw):
        response = send(client, change(key, "Deployed"))
        assert response.status_code == 400
        assert response.json()["errors"] == ["Invalid routing key"]
    short = send(client, change("abc", "Deployed"))
    assert "Length of 'routing_key' is incorrect" in short.json()["errors"][0]
    assert not ChangeEvent.objects.exists()


def test_malformed_json_is_a_400(client: Client, events: NewKey) -> None:
    response = send(client, b"{not json")
    assert response.status_code == 400
    assert response.json()["status"] == "invalid event"


def test_change_events_count_against_the_key_s_rate_limit(
    client: Client, web: Service, redis: Redis, one_window: None
) -> None:
    key = integration(web, "events_v2", rate_limit_per_minute=1)
    assert send(client, change(key.raw, "first")).status_code == 202
    throttled = send(client, change(key.raw, "second"))
    assert throttled.status_code == 429
    assert throttled.json()["status"] == "throttle exceeded"
    assert int(throttled["Retry-After"]) >= 1
    assert ChangeEvent.objects.count() == 1


def test_a_long_summary_is_cut_like_a_trigger_s(client: Client, events: NewKey) -> None:
    assert send(client, change(events.raw, "x" * 2000)).status_code == 202
    assert len(ChangeEvent.objects.get().summary) == 1024


def test_staff_see_changes_in_the_admin_and_may_delete_them(
    client: Client, events: NewKey, root: User
) -> None:
    send(client, change(events.raw, "Deployed web 2.4.1"))
    recorded = ChangeEvent.objects.get()
    assert str(recorded) == "Deployed web 2.4.1"
    staff = Client()
    staff.force_login(root)
    listing = staff.get("/admin/integrations/changeevent/")
    assert listing.status_code == 200
    assert "Deployed web 2.4.1" in listing.content.decode()
    assert staff.get("/admin/integrations/changeevent/add/").status_code == 403
    deleted = staff.post(f"/admin/integrations/changeevent/{recorded.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert not ChangeEvent.objects.exists()


def test_only_post_is_allowed(client: Client) -> None:
    assert client.get("/v2/change/enqueue").status_code == 405
