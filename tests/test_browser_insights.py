"""On-call health in a real Chromium: reached from the header, charts drawn
by the server under the Content-Security-Policy, narrowed to one service,
and readable on a phone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from incidents.models import Incident
from paging.models import Page as Notification
from tests.factories import ServiceFactory, UserFactory

# Fixtures of the browser tests: Debian's Chromium, plain static files, and
# a failure on any Content-Security-Policy violation (pygal's own script
# would be one).
from tests.test_browser import (  # noqa: F401
    ARTIFACTS,
    _plain_static_files,
    browser_type_launch_args,
    log_in,
    no_policy_violations,
)

# An empty cache: figures another test's request left there would be a minute old.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("redis"),
]


def a_busy_week() -> None:
    web = ServiceFactory(name="Web shop", slug="web")
    database = ServiceFactory(name="Database", slug="db")
    ana, bob = UserFactory(username="ana"), UserFactory(username="bob")
    now = timezone.now()
    for n in range(12):
        opened = now - timedelta(days=n % 6, hours=1 + n)
        incident = Incident.objects.create(
            service=database if n % 4 == 0 else web,
            title="Replica lag" if n % 4 == 0 else "Checkout returns 502",
            severity="error",
            status="resolved",
            dedup_key="replica-lag" if n % 4 == 0 else "checkout-502",
            opened_at=opened,
            acknowledged_at=opened + timedelta(minutes=2 + n),
            resolved_at=opened + timedelta(minutes=30 + 5 * n),
        )
        Notification.objects.create(
            incident=incident,
            user=ana if n % 3 else bob,
            channel="ntfy",
            level=1,
            step=1,
            due_at=opened,
        )
    Notification.objects.update(created_at=timezone.now() - timedelta(hours=2))


def test_a_responder_reads_on_call_health_and_narrows_it_to_one_service(
    page: Page, live_server: Any
) -> None:
    base = live_server.url
    a_busy_week()
    log_in(page, base)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Insights").click()

    expect(page).to_have_url(f"{base}/insights")
    expect(page.get_by_role("heading", name="On-call health", exact=True)).to_be_visible()
    charts = page.locator("figure.chart svg.pygal-chart")
    expect(charts).to_have_count(2)
    per_day, pages = charts.nth(0), charts.nth(1)
    # Drawn, and drawn at the card's width: bars for the days with incidents,
    # the three parts of the day in the legend.
    assert per_day.bounding_box()["width"] > 600  # type: ignore[index]
    expect(per_day.locator("rect.rect")).not_to_have_count(0)
    expect(pages.locator(".legends")).to_contain_text("Business hours")
    expect(pages.locator(".legends")).to_contain_text("Weekends")
    expect(page.locator("#noisiest-alerts")).to_contain_text("checkout-502")
    expect(page.locator("#pages-per-person")).to_contain_text("ana")
    expect(page.locator("#services")).to_contain_text("Database")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "insights.png"), full_page=True)

    filters = page.locator("form.filters")
    filters.get_by_label("Range").select_option("7")
    filters.get_by_label("Service").select_option("db")
    filters.get_by_role("button", name="Show").click()

    expect(page).to_have_url(f"{base}/insights?days=7&service=db")
    expect(page.get_by_role("heading", name="On-call health: Database")).to_be_visible()
    expect(page.locator("#noisiest-alerts")).to_contain_text("replica-lag")
    expect(page.locator("#noisiest-alerts")).not_to_contain_text("checkout-502")
    expect(page.locator("#services")).to_have_count(0)
    expect(page.locator("figure.chart svg.pygal-chart")).to_have_count(2)

    # On a phone the charts shrink to the screen and nothing scrolls sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator("figure.chart svg.pygal-chart")).to_have_count(2)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(ARTIFACTS / "insights-phone.png"), full_page=True)
