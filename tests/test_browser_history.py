"""Finding a past incident in a real Chromium: by number from the open view,
by words among resolved ones, narrowed by the days it was opened on."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from incidents import services
from incidents.models import Incident
from tests.factories import IncidentFactory, ServiceFactory

# Fixtures of the browser tests: Debian's Chromium, plain static files, and
# a failure on any Content-Security-Policy violation.
from tests.test_browser import (  # noqa: F401
    _plain_static_files,
    browser_type_launch_args,
    log_in,
    no_policy_violations,
    settled,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("redis"),
]


def resolved(title: str, *, days_ago: int) -> Incident:
    opened = timezone.now() - timedelta(days=days_ago)
    service = ServiceFactory(name="Database", slug="db")
    incident = IncidentFactory(title=title, service=service, now=opened)
    services.acknowledge_incident(incident, actor=None, now=opened + timedelta(minutes=4))
    return services.resolve_incident(incident, actor=None, now=opened + timedelta(minutes=83))


def test_a_responder_finds_past_incidents(page: Page, live_server: Any) -> None:
    base = live_server.url
    disk = resolved("Disk full on db1", days_ago=2)
    resolved("Disk full on db2", days_ago=40)
    log_in(page, base)
    listing = page.locator("#incident-list")
    filters = page.locator("form.filters")

    # A number finds the incident from the open view, resolved or not.
    filters.get_by_label("Search").fill(f"#{disk.pk}")
    expect(listing).to_contain_text("Disk full on db1")
    expect(listing).to_contain_text("acknowledged in 4m · resolved in 1h 23m")
    settled(page)

    # Words find open incidents first, and offer the rest.
    filters.get_by_label("Search").fill("disk full")
    expect(listing).to_contain_text("No open incident matches these filters.")
    settled(page)
    listing.get_by_role("link", name="Search all incidents, resolved ones included").click()
    expect(listing.locator("tbody tr")).to_have_count(2)

    # Resolved ones, opened in the last week.
    filters.get_by_label("Status").select_option("resolved")
    settled(page)
    week_ago = (timezone.localdate() - timedelta(days=7)).isoformat()
    filters.get_by_label("Opened from").fill(week_ago)
    expect(listing.locator("tbody tr")).to_have_count(1)
    expect(listing).to_contain_text("Disk full on db1")
    expect(page).to_have_url(
        f"{base}/?service=&severity=&status=resolved&q=disk%20full&from={week_ago}&to="
    )

    # The address is a bookmark: reloading shows the same history.
    page.reload()
    expect(listing.locator("tbody tr")).to_have_count(1)
    expect(filters.get_by_label("Opened from")).to_have_value(week_ago)
