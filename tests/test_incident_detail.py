"""GET /incidents/{id} and the actions on it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from accounts.tokens import NewToken
from incidents import services
from incidents.models import EventKind, Incident, Status
from tests.factories import IncidentFactory, contact, policy_with_levels

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true", "HX-Target": "incident-body"}


def test_the_page_shows_the_incident_and_its_whole_timeline(alice_client: Client) -> None:
    incident = IncidentFactory(title="Checkout returns 502", details="since 14:00 UTC")
    services.add_note(incident, actor=None, text="Looking at the load balancer")
    response = alice_client.get(f"/incidents/{incident.pk}")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Checkout returns 502" in html
    assert "since 14:00 UTC" in html
    assert "Looking at the load balancer" in html
    assert "Acknowledge" in html
    assert "Reopen" not in html


def test_a_missing_incident_is_a_404(alice_client: Client) -> None:
    assert alice_client.get("/incidents/999999").status_code == 404
    assert alice_client.post("/incidents/999999/acknowledge").status_code == 404


def test_an_unknown_action_is_a_404(alice_client: Client) -> None:
    incident = IncidentFactory()
    assert alice_client.post(f"/incidents/{incident.pk}/delete").status_code == 404


def test_acknowledge_over_htmx_updates_the_page_in_place(alice_client: Client, alice: User) -> None:
    incident = IncidentFactory()
    response = alice_client.post(f"/incidents/{incident.pk}/acknowledge", headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<article id="incident-body"')
    assert "Acknowledged" in html
    assert "by alice" in html
    assert "incidents-changed" in json.loads(response["HX-Trigger"])
    refreshed = Incident.objects.get(pk=incident.pk)
    assert refreshed.status == Status.ACKNOWLEDGED
    assert refreshed.acknowledged_by == alice


def test_an_invalid_transition_shows_a_clear_message_not_an_error_page(
    alice_client: Client,
) -> None:
    incident = services.resolve_incident(IncidentFactory(), actor=None)
    response = alice_client.post(f"/incidents/{incident.pk}/acknowledge", headers=HTMX)
    assert response.status_code == 409
    assert "is resolved; it cannot be acknowledged" in response.content.decode()
    assert Incident.objects.get(pk=incident.pk).status == Status.RESOLVED


def test_without_javascript_actions_redirect_back_with_a_message(alice_client: Client) -> None:
    incident = services.resolve_incident(IncidentFactory(), actor=None)
    response = alice_client.post(f"/incidents/{incident.pk}/resolve", follow=True)
    assert response.redirect_chain == [(f"/incidents/{incident.pk}", 302)]
    assert "cannot be resolved" in response.content.decode()


def test_resolve_from_the_page(alice_client: Client) -> None:
    incident = IncidentFactory()
    response = alice_client.post(f"/incidents/{incident.pk}/resolve", headers=HTMX)
    assert response.status_code == 200
    assert Incident.objects.get(pk=incident.pk).status == Status.RESOLVED


@pytest.mark.django_db(transaction=True)
def test_escalate_now_pages_the_next_level(alice_client: Client, alice: User, web: Any) -> None:
    contact(alice)
    web.escalation_policy = policy_with_levels((5, [alice]), (5, [alice]))
    web.save()
    incident = IncidentFactory(service=web)
    response = alice_client.post(f"/incidents/{incident.pk}/escalate", headers=HTMX)
    assert response.status_code == 200
    assert "Escalated to level 2" in response.content.decode()
    assert Incident.objects.get(pk=incident.pk).escalation_level == 2


def test_escalating_without_a_policy_explains_why_not(alice_client: Client) -> None:
    incident = IncidentFactory()
    response = alice_client.post(f"/incidents/{incident.pk}/escalate", headers=HTMX)
    assert response.status_code == 409
    assert "has no escalation policy" in response.content.decode()


def test_reopen_from_the_page(alice_client: Client) -> None:
    incident = services.resolve_incident(IncidentFactory(), actor=None)
    alice_client.post(f"/incidents/{incident.pk}/reopen", headers=HTMX)
    assert Incident.objects.get(pk=incident.pk).status == Status.TRIGGERED


def test_a_note_lands_on_the_timeline(alice_client: Client) -> None:
    incident = IncidentFactory()
    response = alice_client.post(
        f"/incidents/{incident.pk}/notes", {"text": "Rolled back deploy 42"}, headers=HTMX
    )
    assert response.status_code == 200
    assert "Rolled back deploy 42" in response.content.decode()
    assert incident.timeline.filter(kind=EventKind.NOTE).get().message == "Rolled back deploy 42"


def test_an_empty_note_shows_the_error_and_writes_nothing(alice_client: Client) -> None:
    incident = IncidentFactory()
    response = alice_client.post(f"/incidents/{incident.pk}/notes", {"text": "  "}, headers=HTMX)
    assert response.status_code == 422
    assert "This field is required" in response.content.decode()
    assert not incident.timeline.filter(kind=EventKind.NOTE).exists()
    no_js = alice_client.post(f"/incidents/{incident.pk}/notes", {"text": ""}, follow=True)
    assert "A note needs some text" in no_js.content.decode()


def test_actions_need_a_csrf_token_from_browsers(alice: User) -> None:
    incident = IncidentFactory()
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(f"/incidents/{incident.pk}/acknowledge").status_code == 403
    assert Incident.objects.get(pk=incident.pk).status == Status.TRIGGERED


def auth(token: NewToken) -> dict[str, str]:
    return {"Authorization": f"Bearer {token.raw}"}


def test_api_clients_read_the_incident_with_its_timeline(
    client: Client, read_token: NewToken
) -> None:
    incident = IncidentFactory(title="disk full")
    services.add_note(incident, actor=None, text="cleaning /var/log")
    body = client.get(f"/incidents/{incident.pk}", headers=auth(read_token)).json()
    assert body["title"] == "disk full"
    assert [event["kind"] for event in body["timeline"]] == ["opened", "paged", "note"]
    missing = client.get("/incidents/999999", headers=auth(read_token))
    assert missing.status_code == 404
    assert missing["Content-Type"] == "application/problem+json"


def test_api_clients_acknowledge_and_get_409_on_a_second_try(
    client: Client, write_token: NewToken
) -> None:
    incident = IncidentFactory()
    first = client.post(f"/incidents/{incident.pk}/acknowledge", headers=auth(write_token))
    again = client.post(f"/incidents/{incident.pk}/acknowledge", headers=auth(write_token))
    assert first.status_code == 200
    assert first.json()["status"] == "acknowledged"
    assert first.json()["acknowledged_by"] == "alice"
    assert again.status_code == 409
    assert again.json()["title"] == "Invalid status change"
    assert client.post("/incidents/999999/resolve", headers=auth(write_token)).status_code == 404


def test_api_notes_are_validated(client: Client, write_token: NewToken) -> None:
    incident = IncidentFactory()
    url = f"/incidents/{incident.pk}/notes"
    ok = client.post(
        url,
        json.dumps({"text": "on it"}),
        content_type="application/json",
        headers=auth(write_token),
    )
    empty = client.post(
        url, json.dumps({"text": ""}), content_type="application/json", headers=auth(write_token)
    )
    broken = client.post(url, "{", content_type="application/json", headers=auth(write_token))
    assert ok.status_code == 200
    assert empty.status_code == 422
    assert "text" in empty.json()["errors"]
    assert broken.status_code == 400
    assert incident.timeline.filter(kind=EventKind.NOTE).count() == 1


def test_read_tokens_cannot_act(client: Client, read_token: NewToken) -> None:
    incident = IncidentFactory()
    response = client.post(f"/incidents/{incident.pk}/resolve", headers=auth(read_token))
    assert response.status_code == 403
    assert Incident.objects.get(pk=incident.pk).status == Status.TRIGGERED
