from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client

from accounts.models import ApiToken
from incidents import services
from incidents.models import EventKind, Incident, Service, Status
from tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(root: User) -> Client:
    client = Client()
    client.force_login(root)
    return client


@pytest.mark.parametrize(
    "url",
    [
        "/admin/incidents/service/",
        "/admin/incidents/incident/",
        "/admin/incidents/timelineevent/",
        "/admin/accounts/apitoken/",
        "/admin/incidents/joinedrequest/?q=retry",
        "/admin/incidents/service/add/",
        "/admin/accounts/apitoken/add/",
        "/admin/incidents/incident/?status__exact=triggered&q=disk",
    ],
)
def test_every_admin_page_loads_for_staff(admin_client: Client, url: str) -> None:
    IncidentFactory(title="disk full")
    assert admin_client.get(url).status_code == 200


def test_the_incident_admin_shows_the_timeline_read_only(admin_client: Client) -> None:
    incident = IncidentFactory(title="disk full")
    services.add_note(incident, actor=None, text="a note from the timeline")
    html = admin_client.get(f"/admin/incidents/incident/{incident.pk}/change/").content.decode()
    assert "a note from the timeline" in html
    assert 'name="timeline-0-message"' not in html


def test_admin_actions_go_through_the_services(admin_client: Client, root: User) -> None:
    first, second = IncidentFactory(), IncidentFactory()
    services.resolve_incident(second, actor=None)
    response = admin_client.post(
        "/admin/incidents/incident/",
        {"action": "acknowledge_selected", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )
    texts = [str(message) for message in get_messages(response.wsgi_request)]
    assert "Acknowledged 1 incident(s)." in texts
    assert any("cannot be acknowledged" in text for text in texts)
    first.refresh_from_db()
    assert first.status == Status.ACKNOWLEDGED
    assert first.acknowledged_by == root
    assert first.timeline.filter(kind=EventKind.ACKNOWLEDGED).exists()

    admin_client.post(
        "/admin/incidents/incident/",
        {"action": "resolve_selected", "_selected_action": [first.pk]},
    )
    assert Incident.objects.get(pk=first.pk).status == Status.RESOLVED


def test_a_token_made_in_the_admin_is_shown_once_and_stored_hashed(
    admin_client: Client, alice: User
) -> None:
    response = admin_client.post(
        "/admin/accounts/apitoken/add/",
        {"user": alice.pk, "name": "from admin", "scope": "write"},
        follow=True,
    )
    texts = " ".join(str(message) for message in get_messages(response.wsgi_request))
    token = ApiToken.objects.get()
    assert token.prefix in texts
    assert "shown only once" in texts
    assert token.name == "from admin"

    admin_client.post(
        "/admin/accounts/apitoken/",
        {"action": "revoke_selected", "_selected_action": [token.pk]},
    )
    token.refresh_from_db()
    assert not token.is_active


def test_people_who_are_not_staff_cannot_use_the_admin(alice_client: Client) -> None:
    response = alice_client.get("/admin/incidents/incident/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_a_new_service_can_be_added_in_the_admin(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/incidents/service/add/", {"name": "Payments", "slug": "payments", "description": ""}
    )
    assert response.status_code == 302
    assert Service.objects.get(slug="payments").name == "Payments"


def test_a_responder_who_is_not_staff_is_told_the_admin_is_closed(
    alice_client: Client, admin_client: Client
) -> None:
    """No redirect loop between /admin/ and its login page."""
    response = alice_client.get("/admin/", follow=True)
    assert response.redirect_chain == [("/admin/login/?next=/admin/", 302)]
    assert response.status_code == 200
    assert "You are logged in as alice, who may not use the admin." in response.content.decode()
    assert 'href="/"' in response.content.decode()
    # Staff go straight on; anonymous visitors get the plain form.
    assert admin_client.get("/admin/login/?next=/admin/").status_code == 302
    anonymous = Client().get("/admin/login/?next=/admin/")
    assert anonymous.status_code == 200
    assert "who may not use the admin" not in anonymous.content.decode()
