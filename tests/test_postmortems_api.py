"""The post-mortem API: TODO JSON, adding items, recording follow-ups."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from accounts.tokens import NewToken
from incidents.models import EventKind
from postmortems.models import ActionItem
from tests.postmortem_factories import action_item, postmortem

pytestmark = pytest.mark.django_db


def auth(token: NewToken) -> dict[str, str]:
    return {"Authorization": f"Bearer {token.raw}"}


def post_json(client: Client, url: str, body: Any, token: NewToken) -> Any:
    return client.post(url, json.dumps(body), content_type="application/json", headers=auth(token))


def test_the_todos_endpoint_gives_the_parser_json_with_ids(
    client: Client, read_token: NewToken
) -> None:
    pm = postmortem()
    alert = action_item(pm, action="Add NFS alert", type="Alert", details="retrans > 1%")
    migration = action_item(pm, action="Migrate Vault", type="Migration", priority="P1")
    action_item(pm, action="Old idea", type="Config")
    ActionItem.objects.filter(action="Old idea").update(status="wont_do")

    body = client.get(f"/postmortems/{pm.pk}/todos", headers=auth(read_token)).json()

    assert body["file"].endswith(f"-{pm.slug}.md")
    assert body["safe_todos"] == 1
    assert body["skipped_todos"] == 1
    [todo] = body["todos"]
    assert todo == {
        "priority": "P2",
        "action": "Add NFS alert",
        "type": "Alert",
        "details": "retrans > 1%",
        "safe": True,
        "id": alert.pk,
        "done_url": f"http://localhost:8000/postmortems/{pm.pk}/actions/{alert.pk}/done",
    }
    assert body["skipped"][0]["id"] == migration.pk
    assert body["skipped"][0]["safe"] is False


def test_the_todos_endpoint_needs_a_token_or_a_login(client: Client, alice_client: Client) -> None:
    pm = postmortem()
    assert client.get(f"/postmortems/{pm.pk}/todos").status_code == 302
    json_client = client.get(f"/postmortems/{pm.pk}/todos", headers={"Accept": "application/json"})
    assert json_client.status_code == 401
    assert alice_client.get(f"/postmortems/{pm.pk}/todos").status_code == 200
    missing = alice_client.get("/postmortems/999999/todos")
    assert missing.status_code == 404
    assert missing["Content-Type"] == "application/problem+json"


def test_recording_a_follow_up_marks_the_item_done_and_notes_the_incident(
    client: Client, write_token: NewToken
) -> None:
    pm = postmortem()
    item = action_item(pm, action="Add NFS alert")
    url = f"/postmortems/{pm.pk}/actions/{item.pk}/done"
    body = {"commit": "abc1234", "implemented_by": "postmortem-bot"}

    first = post_json(client, url, body, write_token)
    again = post_json(client, url, body, write_token)

    assert first.status_code == 201
    assert first.json()["status"] == "done"
    assert first.json()["implemented_by"] == "postmortem-bot"
    assert again.status_code == 200
    notes = pm.incident.timeline.filter(kind=EventKind.NOTE)
    assert notes.count() == 1
    assert "Add NFS alert" in notes.get().message
    assert "abc1234" in notes.get().message
    todos = client.get(f"/postmortems/{pm.pk}/todos", headers=auth(write_token)).json()
    assert todos["todos"] == []
    other = post_json(client, url, {"commit": "def5678", "implemented_by": "x"}, write_token)
    assert other.status_code == 409
    assert other.json()["title"] == "Follow-up already recorded"


def test_a_link_is_enough_for_a_follow_up(client: Client, write_token: NewToken) -> None:
    pm = postmortem()
    item = action_item(pm)
    url = f"/postmortems/{pm.pk}/actions/{item.pk}/done"
    body = {"link": "https://git.example/pr/12", "implemented_by": "bob"}
    assert post_json(client, url, body, write_token).status_code == 201
    item.refresh_from_db()
    assert item.link == "https://git.example/pr/12"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"implemented_by": "bob"}, "__all__"),
        ({"commit": "not-a-sha", "implemented_by": "bob"}, "commit"),
        ({"commit": "abc1234"}, "implemented_by"),
        ({"link": "ftp://x", "implemented_by": "bob"}, "link"),
    ],
)
def test_bad_follow_ups_are_422_and_change_nothing(
    client: Client, write_token: NewToken, body: dict[str, str], field: str
) -> None:
    pm = postmortem()
    item = action_item(pm)
    response = post_json(client, f"/postmortems/{pm.pk}/actions/{item.pk}/done", body, write_token)
    assert response.status_code == 422
    assert field in response.json()["errors"]
    item.refresh_from_db()
    assert item.status == "todo"


def test_follow_ups_need_a_write_token_and_an_existing_item(
    client: Client, read_token: NewToken, write_token: NewToken
) -> None:
    pm = postmortem()
    item = action_item(pm)
    body = {"commit": "abc1234", "implemented_by": "bob"}
    url = f"/postmortems/{pm.pk}/actions/{item.pk}/done"
    assert post_json(client, url, body, read_token).status_code == 403
    wrong = post_json(client, f"/postmortems/{pm.pk + 1}/actions/{item.pk}/done", body, write_token)
    assert wrong.status_code == 404
    broken = client.post(url, "{", content_type="application/json", headers=auth(write_token))
    assert broken.status_code == 400


def test_api_clients_add_action_items_and_unknown_types_are_422(
    client: Client, write_token: NewToken
) -> None:
    pm = postmortem()
    url = f"/postmortems/{pm.pk}/actions"
    created = post_json(
        client, url, {"priority": "P1", "action": "Add probe", "type": "monitor"}, write_token
    )
    refused = post_json(
        client, url, {"priority": "P1", "action": "Buy disks", "type": "Purchase"}, write_token
    )
    assert created.status_code == 201
    assert created.json()["type"] == "Monitor"
    assert created.json()["safe"] is True
    assert refused.status_code == 422
    assert refused.json()["errors"]["type"] == [
        "Unknown type 'Purchase'. Use one of: Alert, Config, Monitor (safe to automate) or "
        "Architecture, Investigation, Migration, Runbook (need human review)."
    ]
    assert ActionItem.objects.count() == 1
    missing = post_json(client, "/postmortems/999999/actions", {}, write_token)
    assert missing.status_code == 404
    broken = client.post(url, "[]", content_type="application/json", headers=auth(write_token))
    assert broken.status_code == 400


def test_api_clients_get_missing_things_as_problem_json_and_browsers_as_a_page(
    client: Client, alice_client: Client, write_token: NewToken
) -> None:
    pm = postmortem()
    url = f"/postmortems/{pm.pk}/actions/424242/done"
    api = post_json(client, url, {"commit": "abc1234", "implemented_by": "bob"}, write_token)
    browser = alice_client.post(url, {"commit": "abc1234", "implemented_by": "bob"})
    assert api.status_code == 404
    assert api["Content-Type"] == "application/problem+json"
    assert api.json()["detail"] == f"No action item #424242 in post-mortem #{pm.pk}."
    assert browser.status_code == 404
    assert browser["Content-Type"].startswith("text/html")
