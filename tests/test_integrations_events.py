"""POST /integrations/v2/enqueue: PagerDuty Events API v2, same semantics and answers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from redis import Redis

from incidents.models import EventKind, Incident, Service, Status
from integrations.keys import NewKey, revoke_integration
from tests.integration_factories import integration, trigger

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(web: Service, redis: Redis) -> NewKey:
    return integration(web, "events_v2")


def send(client: Client, body: Any, path: str = "/integrations/v2/enqueue") -> Any:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, data=data, content_type="application/json")


def event(key: str, action: str, dedup_key: str | None) -> dict[str, Any]:
    body = trigger(key) if action == "trigger" else {"routing_key": key, "event_action": action}
    if dedup_key is not None:
        body["dedup_key"] = dedup_key
    return body


# Each case: the events sent in order, then the statuses of the incidents that
# exist afterwards (oldest first). PagerDuty's semantics: one open incident per
# dedup key; a trigger after a resolve opens a new one; acknowledge and resolve
# without an open incident are accepted and dropped.
DEDUP_CASES = [
    ("one trigger opens one incident", [("trigger", "a")], ["triggered"]),
    ("a repeat joins the open incident", [("trigger", "a"), ("trigger", "a")], ["triggered"]),
    ("two keys open two incidents", [("trigger", "a"), ("trigger", "b")], ["triggered"] * 2),
    ("acknowledge", [("trigger", "a"), ("acknowledge", "a")], ["acknowledged"]),
    (
        "a trigger joins an acknowledged one",
        [("trigger", "a"), ("acknowledge", "a"), ("trigger", "a")],
        ["acknowledged"],
    ),
    ("resolve", [("trigger", "a"), ("resolve", "a")], ["resolved"]),
    (
        "resolve after acknowledge",
        [("trigger", "a"), ("acknowledge", "a"), ("resolve", "a")],
        ["resolved"],
    ),
    (
        "a trigger after resolve opens a new one",
        [("trigger", "a"), ("resolve", "a"), ("trigger", "a")],
        ["resolved", "triggered"],
    ),
    ("acknowledge without an incident is dropped", [("acknowledge", "a")], []),
    ("resolve without an incident is dropped", [("resolve", "a")], []),
    (
        "resolve twice: the second is dropped",
        [("trigger", "a"), ("resolve", "a"), ("resolve", "a")],
        ["resolved"],
    ),
    (
        "acknowledge twice: the second is dropped",
        [("trigger", "a"), ("acknowledge", "a"), ("acknowledge", "a")],
        ["acknowledged"],
    ),
    (
        "acknowledge after resolve is dropped",
        [("trigger", "a"), ("resolve", "a"), ("acknowledge", "a")],
        ["resolved"],
    ),
    (
        "resolving one key leaves another open",
        [("trigger", "a"), ("trigger", "b"), ("resolve", "a")],
        ["resolved", "triggered"],
    ),
    (
        "triggers without a key never dedup",
        [("trigger", None), ("trigger", None)],
        ["triggered"] * 2,
    ),
]


@pytest.mark.parametrize(
    ("steps", "statuses"),
    [pytest.param(steps, statuses, id=name) for name, steps, statuses in DEDUP_CASES],
)
def test_dedup_semantics_match_pagerduty(
    client: Client, events: NewKey, steps: list[tuple[str, str | None]], statuses: list[str]
) -> None:
    for action, dedup_key in steps:
        response = send(client, event(events.raw, action, dedup_key))
        assert response.status_code == 202, response.content
        body = response.json()
        assert body["status"] == "success"
        assert body["message"] == "Event processed"
        if dedup_key:
            assert body["dedup_key"] == dedup_key
    assert list(Incident.objects.order_by("pk").values_list("status", flat=True)) == statuses


def test_a_trigger_without_a_dedup_key_gets_one_back_that_resolves_it(
    client: Client, events: NewKey
) -> None:
    dedup_key = send(client, trigger(events.raw)).json()["dedup_key"]
    assert len(dedup_key) == 32
    incident = Incident.objects.get()
    assert incident.dedup_key == dedup_key
    send(client, {"routing_key": events.raw, "event_action": "resolve", "dedup_key": dedup_key})
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED


def test_the_incident_carries_the_event(client: Client, events: NewKey) -> None:
    body = trigger(
        events.raw,
        dedup_key="disk-db1",
        payload={
            "summary": "Disk 95% full on db1 " + "x" * 300,
            "severity": "warning",
            "timestamp": "2026-01-01T10:00:00.000+0000",
            "component": "postgres",
            "group": "prod-datapipe",
            "class": "disk",
            "custom_details": {"free": "5%", "mount": "/var"},
        },
        links=[{"href": "https://grafana.example/d/disk", "text": "Dashboard"}],
        images=[{"src": "https://grafana.example/render/disk.png"}],
        client="Grafana",
        client_url="https://grafana.example",
    )
    assert send(client, body).status_code == 202
    incident = Incident.objects.get()
    assert incident.source == "events_v2"
    assert incident.severity == "warning"
    assert len(incident.title) == 200
    assert incident.title.endswith("…")
    assert "Component: postgres" in incident.details
    assert '"mount": "/var"' in incident.details
    assert "https://grafana.example/d/disk" in incident.details
    opened = incident.timeline.get(kind=EventKind.OPENED)
    assert opened.data["custom_details"] == {"free": "5%", "mount": "/var"}
    assert opened.data["images"] == [{"src": "https://grafana.example/render/disk.png"}]


def test_repeats_are_recorded_on_the_timeline(client: Client, events: NewKey) -> None:
    for _ in range(3):
        send(client, trigger(events.raw, dedup_key="disk-db1"))
    assert Incident.objects.get().timeline.filter(kind=EventKind.ALERT).count() == 2


def test_the_pagerduty_path_works_too(client: Client, events: NewKey) -> None:
    assert send(client, trigger(events.raw), path="/v2/enqueue").status_code == 202
    assert Incident.objects.count() == 1


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda b: b.pop("routing_key"), "'routing_key' is missing or blank"),
        (lambda b: b.update(routing_key="short"), "Length of 'routing_key' is incorrect"),
        (lambda b: b.pop("event_action"), "'event_action' is missing or blank"),
        (lambda b: b.update(event_action="explode"), "'event_action' is invalid"),
        (lambda b: b.pop("payload"), "'payload' is missing or not an object"),
        (lambda b: b["payload"].pop("summary"), "'payload.summary' is missing or blank"),
        (lambda b: b["payload"].pop("source"), "'payload.source' is missing or blank"),
        (lambda b: b["payload"].update(severity="sev0"), "'payload.severity' is invalid"),
        (lambda b: b["payload"].update(timestamp="yesterday"), "'payload.timestamp' is not an ISO"),
        (lambda b: b["payload"].update(summary=42), "'payload.summary' must be a string"),
        (lambda b: b.update(dedup_key="k" * 256), "'dedup_key' is longer than 255"),
        (lambda b: b.update(links=[{"text": "no href"}]), "'links[0].href' is missing"),
        (lambda b: b.update(images="pic.png"), "'images' must be a list"),
    ],
)
def test_an_invalid_event_is_a_400_in_pagerduty_shape_and_writes_nothing(
    client: Client, events: NewKey, mutate: Any, error: str
) -> None:
    body = trigger(events.raw)
    mutate(body)
    response = send(client, body)
    assert response.status_code == 400
    answer = response.json()
    assert answer["status"] == "invalid event"
    assert answer["message"] == "Event object is invalid"
    assert any(error in message for message in answer["errors"]), answer
    assert Incident.objects.count() == 0


def test_acknowledge_needs_a_dedup_key(client: Client, events: NewKey) -> None:
    response = send(client, {"routing_key": events.raw, "event_action": "acknowledge"})
    assert response.status_code == 400
    assert "'dedup_key' is missing or blank" in response.json()["errors"]


@pytest.mark.parametrize("body", ["{nope", "[1]", b"\xff"])
def test_malformed_json_is_a_400(client: Client, events: NewKey, body: str | bytes) -> None:
    response = send(client, body)
    assert response.status_code == 400
    assert response.json()["status"] == "invalid event"


def test_an_unknown_or_revoked_key_is_refused(client: Client, events: NewKey, web: Service) -> None:
    unknown = send(client, trigger("0" * 32))
    assert unknown.status_code == 400
    assert unknown.json()["errors"] == ["Invalid routing key"]
    revoke_integration(events.integration)
    assert send(client, trigger(events.raw)).status_code == 400
    heartbeat = integration(web, "heartbeat")
    assert send(client, trigger(heartbeat.raw)).status_code == 400
    assert Incident.objects.count() == 0


def test_bodies_over_512_kb_get_413(client: Client, events: NewKey) -> None:
    body = trigger(events.raw, payload={"custom_details": {"log": "x" * 600_000}})
    response = send(client, body)
    assert response.status_code == 413
    assert Incident.objects.count() == 0


def test_bodies_over_django_s_own_limit_get_413_too(client: Client, events: NewKey) -> None:
    body = trigger(events.raw, payload={"custom_details": {"log": "x" * 3_000_000}})
    response = send(client, body)
    assert response.status_code == 413
    assert response.json()["message"] == "Request body too large"


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(
    client: Client, web: Service, redis: Redis, one_window: None
) -> None:
    limited = integration(web, "events_v2", rate_limit_per_minute=3)
    statuses = [send(client, trigger(limited.raw, dedup_key="k")).status_code for _ in range(5)]
    assert statuses == [202, 202, 202, 429, 429]
    response = send(client, trigger(limited.raw, dedup_key="k"))
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response.json()["status"] == "throttle exceeded"
    incident = Incident.objects.get()
    assert incident.timeline.filter(kind=EventKind.ALERT).count() == 2


def test_rate_limits_are_per_key(
    client: Client, web: Service, redis: Redis, one_window: None
) -> None:
    first = integration(web, "events_v2", rate_limit_per_minute=1)
    second = integration(web, "events_v2", rate_limit_per_minute=1)
    assert send(client, trigger(first.raw)).status_code == 202
    assert send(client, trigger(second.raw)).status_code == 202
    assert send(client, trigger(first.raw)).status_code == 429


def test_only_post_is_allowed(client: Client) -> None:
    assert client.get("/integrations/v2/enqueue").status_code == 405
