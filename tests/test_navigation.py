"""The header reaches every page a person may use, and only those."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db

EVERYONE = {
    "Incidents": "/",
    "New incident": "/incidents/new",
    "On call": "/oncall",
    "Insights": "/insights",
    "Post-mortems": "/postmortems/",
    "Integrations": "/integrations",
    "Status page": "/status",
    "My shifts": "/oncall/mine",
    "My notifications": "/account/notifications",
    "API tokens": "/account/tokens",
    "Settings": "/account/settings",
}
STAFF_ONLY = {"Unreachable": "/oncall/unreachable", "Admin": "/admin/"}


def _header_links(client: Client, path: str = "/") -> dict[str, str]:
    page = client.get(path).content.decode()
    header = page[page.index('<header class="topbar">') : page.index("</header>")]
    return {
        text.strip(): href
        for href, text in re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', header)
        if text.strip() != "triage"
    }


def test_a_responder_reaches_every_page_they_may_use_from_the_header(
    alice_client: Client,
) -> None:
    links = _header_links(alice_client)
    assert links == EVERYONE
    for href in links.values():
        assert alice_client.get(href).status_code == 200, href


def test_staff_also_reach_the_unreachable_list_and_the_admin(root: User) -> None:
    client = Client()
    client.force_login(root)
    links = _header_links(client)
    assert links == EVERYONE | STAFF_ONLY
    for href in links.values():
        assert client.get(href).status_code == 200, href


def test_the_header_marks_the_page_you_are_on(alice_client: Client) -> None:
    page = alice_client.get("/oncall").content.decode()
    assert re.search(r'<a href="/oncall" aria-current="page">On call</a>', page)
    assert page.count('aria-current="page"') == 1


def test_anonymous_visitors_of_public_pages_see_no_internal_links() -> None:
    page = Client().get("/status").content.decode()
    header = page[page.index('<header class="topbar">') : page.index("</header>")]
    assert "<nav" not in header
