"""Acknowledging from the notification, in a real Chromium: the link is
taken from the message a real worker delivered to a local receiver."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from incidents.models import Incident, Status
from tests.factories import (
    IncidentFactory,
    ServiceFactory,
    UserFactory,
    contact,
    policy_with_levels,
)
from tests.processes import app_env, celery_worker, wait_for
from tests.receiver import Receiver, receiver

# Fixtures of the browser tests: Debian's Chromium, plain static files, and
# a failure on any Content-Security-Policy violation.
from tests.test_browser import (  # noqa: F401
    _plain_static_files,
    browser_type_launch_args,
    no_policy_violations,
)

# The receiver listens on 127.0.0.1, allowed here as staff would allow a LAN service.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("outbound_loopback"),
]


@pytest.fixture
def inbox() -> Iterator[Receiver]:
    with receiver() as found:
        yield found


def test_alice_acknowledges_from_the_link_in_her_notification(
    page: Page, live_server: Any, inbox: Receiver
) -> None:
    base = live_server.url
    alice = UserFactory(username="alice", password="a-long-test-password")
    contact(alice, url=inbox.url)
    web = ServiceFactory(name="Web shop", slug="web")
    web.escalation_policy = policy_with_levels((5, [alice]))
    web.save()
    with celery_worker(env=app_env(BASE_URL=base)):
        incident = IncidentFactory(service=web, title="Checkout returns 502", severity="critical")
        wait_for(lambda: len(inbox.messages) == 1, 30, "alice paged through the worker")
    body = inbox.messages[0]["message"]
    match = re.search(r"^Acknowledge: (\S+)$", body, re.MULTILINE)
    assert match, body
    link = match.group(1)
    assert link.startswith(f"{base}/a/")

    # Opening the link (as a phone's browser, or a mail scanner, would) asks first.
    page.goto(link)
    expect(page.get_by_role("heading")).to_have_text(f"Acknowledge incident #{incident.pk}?")
    expect(page.get_by_text("Checkout returns 502")).to_be_visible()
    expect(page.locator(".status")).to_have_text("Triggered")
    assert Incident.objects.get(pk=incident.pk).status == Status.TRIGGERED

    page.get_by_role("button", name="Acknowledge as alice").click()
    expect(page.get_by_role("status")).to_have_text("Acknowledged by alice from a notification.")
    assert Incident.objects.get(pk=incident.pk).acknowledged_by == alice

    # The incident's page (after logging in) says who and from where.
    page.goto(f"{base}/incidents/{incident.pk}")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("a-long-test-password")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/incidents/{incident.pk}")
    expect(page.locator("#incident-body .meta")).to_contain_text("Acknowledged")
    acknowledged = page.locator("#incident-body dl.facts dt:text-is('Acknowledged') + dd")
    expect(acknowledged).to_contain_text("by alice")
    expect(page.locator(".timeline")).to_contain_text("by alice from a notification")
    # The link did its work: opening it again says so.
    page.goto(link)
    expect(page.get_by_role("heading")).to_have_text("This link was already used")
