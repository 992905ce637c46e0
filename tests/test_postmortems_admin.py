"""The admin pages for post-mortems and action items."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from postmortems.models import PostMortem, PostMortemStatus
from tests.postmortem_factories import action_item, postmortem

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(root: User) -> Client:
    client = Client()
    client.force_login(root)
    return client


def test_every_post_mortem_admin_page_loads_for_staff(admin_client: Client) -> None:
    pm = postmortem()
    item = action_item(pm, action="Add NFS alert")
    for url in (
        "/admin/postmortems/postmortem/",
        f"/admin/postmortems/postmortem/{pm.pk}/change/",
        "/admin/postmortems/actionitem/",
        f"/admin/postmortems/actionitem/{item.pk}/change/",
        "/admin/postmortems/postmortem/?status__exact=draft&q=disk",
    ):
        assert admin_client.get(url).status_code == 200, url
    html = admin_client.get(f"/admin/postmortems/postmortem/{pm.pk}/change/").content.decode()
    assert "Add NFS alert" in html  # the inline


def test_publishing_from_the_admin_goes_through_the_service(admin_client: Client) -> None:
    pm = postmortem()
    response = admin_client.post(
        "/admin/postmortems/postmortem/",
        {"action": "publish_selected", "_selected_action": [pm.pk]},
        follow=True,
    )
    assert "Published 1 post-mortem(s)." in response.content.decode()
    pm.refresh_from_db()
    assert pm.status == PostMortemStatus.PUBLISHED
    assert pm.published_at is not None
    again = admin_client.post(
        "/admin/postmortems/postmortem/",
        {"action": "publish_selected", "_selected_action": [pm.pk]},
        follow=True,
    )
    assert "cannot become published" in again.content.decode()


def test_an_unknown_type_is_refused_in_the_admin_inline(admin_client: Client) -> None:
    pm = postmortem()
    item = action_item(pm)
    url = f"/admin/postmortems/actionitem/{item.pk}/change/"
    response = admin_client.post(
        url,
        {
            "post_mortem": pm.pk,
            "position": 1,
            "priority": "P1",
            "action": "Buy disks",
            "type": "Purchase",
            "details": "",
            "commit": "",
            "link": "",
        },
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert PostMortem.objects.get().action_items.get().type == "Alert"


def test_responders_who_are_not_staff_cannot_use_the_admin(alice_client: Client) -> None:
    response = alice_client.get("/admin/postmortems/postmortem/")
    assert response.status_code == 302
