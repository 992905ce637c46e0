"""A browser in Tokyo: the first sign-in stores its zone and the pages show
their times in it (Chromium through Playwright, as tests/test_browser.py)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import Profile
from tests.factories import IncidentFactory, UserFactory

# The launch arguments (Debian's Chromium), plain static files and the
# Content-Security-Policy watch are test_browser.py's.
from tests.test_browser import (  # noqa: F401
    _plain_static_files,
    browser_type_launch_args,
    no_policy_violations,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TOKYO = ZoneInfo("Asia/Tokyo")


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "timezone_id": "Asia/Tokyo"}


def test_the_first_sign_in_stores_the_browsers_zone_and_times_show_in_it(
    page: Page, live_server: Any
) -> None:
    base = live_server.url
    incident = IncidentFactory(title="checkout 502")
    UserFactory(username="carol", password="a-long-test-password")
    page.goto(f"{base}/login")
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Password").fill("a-long-test-password")
    # The first signed-in page sends the browser's zone (without reloading:
    # test_browser's filters test starts filtering at once).
    with page.expect_response("**/account/settings/browser-time-zone") as sent:
        page.get_by_role("button", name="Log in").click()
    assert sent.value.ok
    assert Profile.objects.get(user__username="carol").time_zone == "Asia/Tokyo"
    # Stored: the page asks no more.
    expect(page.locator("body[data-time-zone-url]")).to_have_count(0)

    page.goto(f"{base}/incidents/{incident.pk}")
    opened = timezone.localtime(incident.opened_at, TOKYO)
    expect(page.get_by_text(f"{opened:%Y-%m-%d %H:%M:%S} JST").first).to_be_visible()

    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_label("Time zone")).to_have_value("Asia/Tokyo")
    expect(page.locator("[data-browser-zone]")).to_have_text("Asia/Tokyo")
