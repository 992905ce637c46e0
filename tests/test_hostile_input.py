"""Hostile strings get a 400 naming the field, never a 500, and write nothing.

Each test here is one reproduction from issue 15 (item 2): NUL characters,
lone surrogates, nesting deeper than the limit and bracket bombs, sent to
the ingest endpoints, the incident endpoints, post-mortem action items and
path parameters. ``tests/test_hostile_property.py`` throws generated input
of the same kinds at every endpoint.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from redis import Redis

from accounts.tokens import NewToken
from incidents.models import Incident, Service, TimelineEvent
from integrations.keys import NewKey
from integrations.models import Alert
from postmortems.models import ActionItem
from tests.factories import IncidentFactory
from tests.integration_factories import am_alert, am_notification, integration, trigger
from tests.postmortem_factories import postmortem
from triage.jsonbody import MAX_DEPTH

pytestmark = pytest.mark.django_db

NUL = "\x00"
SURROGATE = "\ud800"


def post(client: Client, path: str, body: Any, **headers: str) -> Any:
    # json.dumps escapes a lone surrogate as the six characters \ud800, which
    # is what a hostile sender puts on the wire (raw, it is not valid UTF-8).
    data = body if isinstance(body, (str, bytes)) else _dumps(body)
    return client.post(path, data=data, content_type="application/json", headers=headers)


def _dumps(body: Any) -> str:
    # Encoding a 950-deep body recurses once a level, and under pytest-xdist a
    # test runs some frames deeper than under plain pytest. The limit is raised
    # for the encoding only: the request runs under the usual one.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(limit + 1000)
    try:
        return json.dumps(body)
    finally:
        sys.setrecursionlimit(limit)


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"a": value}
    return value


def written() -> tuple[int, int, int]:
    return Incident.objects.count(), TimelineEvent.objects.count(), Alert.objects.count()


@pytest.fixture
def events(web: Service, redis: Redis) -> NewKey:
    return integration(web, "events_v2")


@pytest.fixture
def alertmanager(web: Service, redis: Redis) -> NewKey:
    return integration(web, "alertmanager")


@pytest.mark.parametrize("path", ["/v2/enqueue", "/integrations/v2/enqueue", "/v2/change/enqueue"])
def test_a_bracket_bomb_is_a_400_in_pagerduty_shape(client: Client, path: str) -> None:
    response = post(client, path, "[" * 100_000 + "]" * 100_000)

    assert response.status_code == 400
    assert response.json()["status"] == "invalid event"
    assert f"deeper than {MAX_DEPTH}" in " ".join(response.json()["errors"])


@pytest.mark.parametrize(
    ("field", "where"),
    [
        ("summary", "payload.summary"),
        ("source", "payload.source"),
        ("custom_details", "payload.custom_details.why"),
    ],
)
@pytest.mark.parametrize(("bad", "named"), [(NUL, "NUL character"), (SURROGATE, "surrogate")])
def test_hostile_strings_in_an_event_payload_are_a_400_naming_the_field(
    client: Client, events: NewKey, field: str, where: str, bad: str, named: str
) -> None:
    value: Any = {"why": f"disk{bad}full"} if field == "custom_details" else f"db{bad}1"
    before = written()

    response = post(client, "/v2/enqueue", trigger(events.raw, payload={field: value}))

    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "invalid event"
    assert any(where in error and named in error for error in body["errors"]), body
    assert written() == before


@pytest.mark.parametrize("bad", [NUL, SURROGATE])
def test_hostile_dedup_keys_are_a_400(client: Client, events: NewKey, bad: str) -> None:
    before = written()
    response = post(client, "/v2/enqueue", trigger(events.raw, dedup_key=f"k{bad}"))
    assert response.status_code == 400
    assert any("dedup_key" in error for error in response.json()["errors"])
    assert written() == before


def test_custom_details_nested_950_deep_are_a_400(client: Client, events: NewKey) -> None:
    before = written()
    response = post(
        client, "/v2/enqueue", trigger(events.raw, payload={"custom_details": nested(950)})
    )
    assert response.status_code == 400
    errors = " ".join(response.json()["errors"])
    assert "payload.custom_details.a.a" in errors
    assert f"deeper than {MAX_DEPTH}" in errors
    assert written() == before


def test_custom_details_at_the_depth_limit_are_accepted(client: Client, events: NewKey) -> None:
    # The event itself is two levels (body, payload): custom_details may use the rest.
    details = nested(MAX_DEPTH - 2)
    response = post(client, "/v2/enqueue", trigger(events.raw, payload={"custom_details": details}))
    assert response.status_code == 202
    assert '"a": "bottom"' in Incident.objects.get().details


def _with_bad(bad: str, where: str) -> dict[str, Any]:
    alert = am_alert("f1")
    notification = am_notification(alert)
    if where == "labels":
        alert["labels"]["instance"] = f"db{bad}1"
    elif where == "label name":
        alert["labels"][f"inst{bad}"] = "db1"
    elif where == "annotations":
        alert["annotations"]["summary"] = f"disk{bad}full"
    elif where == "generatorURL":
        alert["generatorURL"] = f"http://prometheus{bad}/graph"
    else:
        notification["receiver"] = f"triage{bad}"
    notification["alerts"] = [alert]
    return notification


@pytest.mark.parametrize(
    ("where", "path"),
    [
        ("labels", "alerts[0].labels.instance"),
        ("label name", "alerts[0].labels"),
        ("annotations", "alerts[0].annotations.summary"),
        ("generatorURL", "alerts[0].generatorURL"),
        ("receiver", "receiver"),
    ],
)
@pytest.mark.parametrize(("bad", "named"), [(NUL, "NUL character"), (SURROGATE, "surrogate")])
def test_hostile_strings_in_alertmanager_notifications_are_a_problem_400(
    client: Client, alertmanager: NewKey, where: str, path: str, bad: str, named: str
) -> None:
    before = written()

    response = post(client, f"/integrations/alertmanager/{alertmanager.raw}", _with_bad(bad, where))

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert any(field.startswith(path) for field in errors), errors
    assert named in " ".join(message for messages in errors.values() for message in messages)
    assert written() == before


def test_a_lone_surrogate_in_a_json_title_is_a_problem_400(
    client: Client, web: Service, write_token: NewToken
) -> None:
    before = written()
    response = post(
        client,
        "/incidents",
        {"title": f"Disk {SURROGATE}", "service": "web", "severity": "critical"},
        Authorization=f"Bearer {write_token.raw}",
    )
    assert response.status_code == 400
    assert "title" in response.json()["errors"]
    assert written() == before


def test_a_bracket_bomb_to_post_incidents_is_a_problem_400(
    client: Client, write_token: NewToken
) -> None:
    response = post(
        client,
        "/incidents",
        "[" * 100_000 + "]" * 100_000,
        Authorization=f"Bearer {write_token.raw}",
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("bad", [NUL, SURROGATE])
def test_hostile_notes_are_a_400_and_not_added(alice_client: Client, bad: str) -> None:
    incident = IncidentFactory()
    before = written()
    response = alice_client.post(
        f"/incidents/{incident.pk}/notes",
        data=json.dumps({"text": f"rolled back{bad}"}),
        content_type="application/json",
    )
    assert response.status_code in (400, 422)
    assert response.status_code < 500
    assert written() == before


def test_a_lone_surrogate_in_an_action_item_is_a_400(alice_client: Client) -> None:
    pm = postmortem()
    before = ActionItem.objects.count()
    response = alice_client.post(
        f"/postmortems/{pm.pk}/actions",
        data=json.dumps({"priority": "P1", "action": f"Add alert{SURROGATE}", "type": "Alert"}),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "action" in response.json()["errors"]
    assert ActionItem.objects.count() == before


@pytest.mark.parametrize("path", ["/oncall/people/%00.ics", "/oncall/people/a%00b.ics"])
def test_a_nul_in_a_path_parameter_is_not_a_server_error(alice: User, path: str) -> None:
    client = Client()
    client.force_login(alice)
    response = client.get(path)
    assert response.status_code in (400, 404)


@pytest.mark.parametrize("query", ["q=%00", "q=a%00b", "status=%00", "service=%00"])
def test_a_nul_in_a_dashboard_search_is_a_400(alice_client: Client, query: str) -> None:
    response = alice_client.get(f"/?{query}")
    assert response.status_code == 400


def test_a_nul_in_an_api_search_is_a_4xx(client: Client, read_token: NewToken) -> None:
    response = client.get(
        "/v1/incidents?q=%00", headers={"Authorization": f"Bearer {read_token.raw}"}
    )
    assert 400 <= response.status_code < 500


@pytest.mark.parametrize("path", ["/v1/oncall?service=%00", "/v2/enqueue?x=%00", "/mcp?x=%00"])
def test_a_nul_in_an_api_url_is_problem_json_even_without_a_token(
    client: Client, path: str
) -> None:
    # The API documents problem+json for its errors: a client that sent no
    # token and no Accept header gets it too (schemathesis found this).
    response = client.get(path)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (
            '{"a": [1, {"b": "]}\\"[{"}], "c": ' + "[" * 40 + "]" * 40 + "}",
            "c" + "[0]" * (MAX_DEPTH - 1),
        ),
        ('[0, 1, {"k]e{y": ' + '{"x": ' * 40 + "1" + "}" * 41 + "]", "[2].k]e{y" + ".x" * 30),
        ("1, " + "[" * 40, "[0]" * MAX_DEPTH),  # not JSON either: the depth is told first
    ],
)
def test_the_field_named_for_too_deep_a_body_is_where_the_limit_is_crossed(
    client: Client, alertmanager: NewKey, body: str, path: str
) -> None:
    response = post(client, f"/integrations/alertmanager/{alertmanager.raw}", body)
    assert response.status_code == 400
    assert response.json()["errors"] == {path: [f"is nested deeper than {MAX_DEPTH} levels"]}
