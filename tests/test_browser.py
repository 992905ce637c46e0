"""The responder's path in a real Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone
from playwright.sync_api import Page, expect

from incidents.models import Incident, Status
from paging.models import Page as Notification
from paging.models import PageStatus
from tests.factories import (
    IncidentFactory,
    ServiceFactory,
    UserFactory,
    contact,
    policy_with_levels,
)
from tests.postmortem_factories import postmortem
from tests.processes import BIN, app_env, celery_worker, wait_for
from tests.test_reach_processes import logged

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: apt-get install chromium, or set CHROMIUM_PATH"
        )
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ],
    }


@pytest.fixture(autouse=True)
def _plain_static_files(settings: Any) -> None:
    # The live server serves static files from the source folders, which hold
    # no hashed names; production's manifest storage is tested elsewhere.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def no_policy_violations(page: Page) -> Any:
    """Fail the test if the Content-Security-Policy blocked anything: the
    pages must work with scripts only from our own files."""
    blocked: list[str] = []
    page.on(
        "console",
        lambda message: (
            blocked.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield
    assert blocked == []


def settled(page: Page) -> None:
    """Wait until htmx has finished swapping and wired up the new content.

    htmx activates swapped-in elements after a short settle delay; a person
    cannot click faster than that, a test can.
    """
    busy = ".htmx-request, .htmx-swapping, .htmx-settling, .htmx-added"
    page.wait_for_function(f"() => !document.querySelector('{busy}')")


def log_in(page: Page, base: str) -> None:
    UserFactory(username="carol", password="a-long-test-password")
    page.goto(f"{base}/")
    expect(page).to_have_url(f"{base}/login?next=/")
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Password").fill("a-long-test-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("All clear: no open incidents.")).to_be_visible()
    # Deferred scripts run after the text shows; with the clock moved back the
    # browser revalidates its cached copies first (a 304 round trip), so wait
    # for htmx (failing after Playwright's timeout) instead of racing it.
    page.wait_for_function("typeof htmx === 'object'")


def test_a_responder_opens_acknowledges_and_resolves_an_incident(
    page: Page, live_server: Any
) -> None:
    base = live_server.url
    ServiceFactory(name="Web shop", slug="web")
    log_in(page, base)

    # Open an incident from the dashboard's form: it appears without a reload.
    page.get_by_text("Open an incident").click()
    form = page.locator("#new-incident")
    expect(form.get_by_label("Title")).to_be_visible()
    settled(page)
    form.get_by_label("Title").fill("   ")
    form.get_by_label("Service").select_option("web")
    page.get_by_role("button", name="Open incident").click()
    # A blank title passes the browser's check but not the server's: the
    # form says so in place, keeping what was chosen.
    expect(form).to_contain_text("This field is required")
    settled(page)
    form.get_by_label("Title").fill("Checkout returns 502")
    form.get_by_label("Severity").select_option("critical")
    page.get_by_role("button", name="Open incident").click()
    expect(page.get_by_text("Opened #")).to_be_visible()
    row = page.locator("#incident-list tr", has_text="Checkout returns 502")
    expect(row).to_be_visible()
    expect(row).to_contain_text("SEV1")

    # Incidents opened elsewhere show up through the periodic refresh.
    IncidentFactory(title="Replica lag", severity="warning")
    expect(page.locator("#incident-list")).to_contain_text("Replica lag", timeout=10_000)
    # The counts and the tab's title follow the list.
    expect(page.locator("#severity-counts .sev-warning .n")).to_have_text("1")
    expect(page).to_have_title("(2) Open incidents · triage")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    # Acknowledge and resolve from the incident's page, updated in place.
    row.get_by_role("link", name="Checkout returns 502").click()
    incident = Incident.objects.get(title="Checkout returns 502")
    expect(page).to_have_url(f"{base}/incidents/{incident.pk}")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.locator("#incident-body .meta")).to_contain_text("Acknowledged")
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
    settled(page)
    page.get_by_label("Add a note").fill("Rolled back deploy 42")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator(".timeline")).to_contain_text("Rolled back deploy 42")
    settled(page)
    page.get_by_role("button", name="Resolve").click()
    expect(page.locator("#incident-body .meta")).to_contain_text("Resolved")
    assert Incident.objects.get(pk=incident.pk).status == Status.RESOLVED

    # Back on the dashboard it is gone; the other incident remains.
    page.get_by_role("link", name="Incidents").click()
    expect(page.locator("#incident-list")).to_contain_text("Replica lag")
    expect(page.locator("#incident-list")).not_to_contain_text("Checkout returns 502")


def test_the_dashboard_filters_work_in_the_browser(page: Page, live_server: Any) -> None:
    base = live_server.url
    db = ServiceFactory(name="Database", slug="db")
    IncidentFactory(title="Replica lag", service=db, severity="warning")
    IncidentFactory(title="Checkout returns 502", severity="critical")
    log_in_existing = UserFactory(username="dave", password="a-long-test-password")
    page.goto(f"{base}/login")
    page.get_by_label("Username").fill(log_in_existing.username)
    page.get_by_label("Password").fill("a-long-test-password")
    page.get_by_role("button", name="Log in").click()

    page.locator("form.filters").get_by_label("Severity").select_option("warning")
    expect(page.locator("#incident-list")).not_to_contain_text("Checkout returns 502")
    expect(page.locator("#incident-list")).to_contain_text("Replica lag")
    expect(page).to_have_url(f"{base}/?service=&severity=warning&status=&q=&from=&to=")
    page.get_by_label("Search").fill("nothing like this")
    expect(page.locator("#incident-list")).to_contain_text("No open incident matches")


def test_a_flood_of_guesses_does_not_lock_a_responder_out_of_their_browser(
    page: Page, live_server: Any, settings: Any, redis: Any, time_machine: Any
) -> None:
    base = live_server.url
    settings.LOGIN_RATE_LIMIT = 3
    # Inside one rate-limit window, the clock running (Playwright waits on it).
    time_machine.move_to(datetime(2026, 11, 23, 3, 0, 10, tzinfo=UTC), tick=True)
    log_in(page, base)
    page.get_by_role("button", name="Log out carol").click()

    def try_to_log_in(somewhere: Page, password: str) -> None:
        somewhere.goto(f"{base}/login")
        somewhere.get_by_label("Username").fill("carol")
        somewhere.get_by_label("Password").fill(password)
        somewhere.get_by_role("button", name="Log in").click()

    assert page.context.browser is not None
    attacker = page.context.browser.new_context().new_page()
    for i in range(4):
        try_to_log_in(attacker, f"guess{i}")
    expect(attacker.get_by_text("Too many login attempts")).to_be_visible()

    # Carol, at the browser she logged in with before, gets in all the same.
    try_to_log_in(page, "a-long-test-password")
    expect(page.get_by_text("All clear: no open incidents.")).to_be_visible()
    attacker.context.close()
    # What made her browser trusted, kept out of reach of the page's scripts.
    device = next(c for c in page.context.cookies() if c["name"] == "triage_device")
    assert device["httpOnly"]
    assert device["sameSite"] == "Lax"
    assert "triage_device" not in page.evaluate("document.cookie")


def test_nobody_reached_shows_within_one_refresh_and_level_2_was_paged_at_once(
    page: Page, live_server: Any, tmp_path: Path, outbound_loopback: Any
) -> None:
    """alice's only method is a webhook that refuses connections; bob has
    none. Real worker and beat deliver (and retry) alice's page; the backoff
    is shortened by moving each retry's due time back, so reconciliation
    (every second here) sends it at once."""
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    contact(alice, url="json://127.0.0.1:9/hook")  # nothing listens there
    service = ServiceFactory(name="Web shop", slug="web")
    service.escalation_policy = policy_with_levels((30, [alice]), (30, [bob]))
    service.save()
    base = live_server.url
    log_in(page, base)
    incident = IncidentFactory(service=service, title="Checkout returns 502")
    row = page.locator(f'#incident-list tr[data-incident="{incident.pk}"]')
    expect(row).to_contain_text("alice … queued", timeout=10_000)
    expect(row).to_contain_text("next: level 2 — bob, in 29m")  # a live countdown

    pending = Notification.objects.filter(incident=incident, status=PageStatus.QUEUED)
    unfinished = Notification.objects.filter(
        incident=incident, status__in=[PageStatus.QUEUED, PageStatus.SENDING]
    )
    quick = {"RECONCILE_SECONDS": "1", "ESCALATION_CHECK_SECONDS": "0.5"}
    beat = [str(BIN / "celery"), "-A", "triage", "beat", "-s", str(tmp_path / "schedule")]
    with celery_worker(env=app_env(**quick)), logged(beat, tmp_path / "beat.log", **quick):

        def every_attempt_failed() -> bool:
            # Each retry falls due at once: reconciliation sends it.
            pending.update(due_at=timezone.now() - timedelta(seconds=31))
            attempts = Notification.objects.filter(incident=incident, user=alice).count()
            return attempts == 5 and not unfinished.exists()

        wait_for(every_attempt_failed, 60, "alice's five attempts failed")
        expect(row).to_contain_text("nobody reached", timeout=6_000)  # one 5 s refresh
    expect(row).to_contain_text("bob ✗ no contact method")
    expect(row).to_contain_text("last level — nobody else will be paged")
    incident.refresh_from_db()
    assert incident.escalation_level == 2
    assert incident.opened_at + timedelta(minutes=30) > timezone.now()  # did not wait
    page.goto(f"{base}/incidents/{incident.pk}")
    timeline = page.locator(".timeline")
    expect(timeline).to_contain_text("Could not reach alice: connection refused by 127.0.0.1")
    expect(timeline).to_contain_text("Escalated to level 2 (nobody at level 1 could be reached)")
    expect(timeline).to_contain_text("Could not reach bob: no contact method")
    expect(page.locator("#incident-body header")).to_contain_text("nobody reached")


def test_the_new_incident_page_lands_on_the_opened_incident(page: Page, live_server: Any) -> None:
    base = live_server.url
    ServiceFactory(name="Web shop", slug="web")
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    log_in(page, base)

    page.get_by_role("link", name="New incident").click()
    expect(page).to_have_url(f"{base}/incidents/new")
    page.wait_for_function("typeof htmx === 'object'")
    page.get_by_label("Title").fill("Search is slow")
    page.get_by_label("Service").select_option("web")
    page.get_by_role("button", name="Open incident").click()
    incident = Incident.objects.get(title="Search is slow")
    expect(page).to_have_url(f"{base}/incidents/{incident.pk}")
    expect(page.get_by_role("heading", name="Search is slow")).to_be_visible()
    assert missing == []  # the favicon included


def test_publishing_with_unwritten_sections_asks_first(page: Page, live_server: Any) -> None:
    base = live_server.url
    pm = postmortem()
    log_in(page, base)
    carol = User.objects.get(username="carol")
    carol.user_permissions.add(Permission.objects.get(codename="publish_postmortem"))
    page.goto(f"{base}/postmortems/{pm.pk}")
    page.wait_for_function("typeof htmx === 'object'")
    status = page.locator("#pm-status")
    expect(status).to_contain_text(
        "Not written yet: Summary, Impact, Root cause chain, Lessons learned."
    )

    # The hint is a placeholder: the text box is empty, ready to type in.
    page.locator("#section-summary").get_by_role("link", name="Edit").click()
    summary = page.locator("#section-summary textarea")
    expect(summary).to_have_attribute("placeholder", "What happened, in two or three sentences.")
    expect(summary).to_have_value("")
    settled(page)
    summary.fill("The NFS server hung.")
    page.locator("#section-summary").get_by_role("button", name="Save").click()
    expect(page.locator("#section-summary")).to_contain_text("The NFS server hung.")
    expect(status).to_contain_text("Not written yet: Impact, Root cause chain, Lessons learned.")
    settled(page)

    # Publishing asks first; saying no changes nothing.
    asked: list[str] = []

    def answer(dialog: Any, accept: bool) -> None:
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda dialog: answer(dialog, False))
    status.get_by_role("button", name="Publish").click()
    for _ in range(100):  # Playwright hands the dialog over while it waits
        if asked:
            break
        page.wait_for_timeout(50)
    expect(status).to_contain_text("Draft")
    assert len(asked) == 1
    assert asked[0].startswith("Not written yet: Impact, Root cause chain")
    pm.refresh_from_db()
    assert pm.status == "draft"

    page.once("dialog", lambda dialog: answer(dialog, True))
    status.get_by_role("button", name="Publish").click()
    expect(status).to_contain_text("Published")
    assert len(asked) == 2
    pm.refresh_from_db()
    assert pm.status == "published"


_SET_VISIBILITY = """hidden => {
  Object.defineProperty(document, "hidden", {configurable: true, get: () => hidden});
  Object.defineProperty(document, "visibilityState",
    {configurable: true, get: () => (hidden ? "hidden" : "visible")});
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def test_the_list_stops_polling_while_the_tab_is_hidden_and_catches_up_when_shown(
    page: Page, live_server: Any
) -> None:
    base = live_server.url
    log_in(page, base)
    polls: list[str] = []
    page.on(
        "request",
        lambda request: (
            polls.append(request.url)
            if request.headers.get("hx-target") == "incident-list"
            else None
        ),
    )
    with page.expect_request(
        lambda request: request.headers.get("hx-target") == "incident-list", timeout=7_000
    ):
        pass  # polling runs
    page.evaluate(_SET_VISIBILITY, True)
    IncidentFactory(title="Opened while nobody looked")
    polls.clear()
    page.wait_for_timeout(11_000)  # two polling periods
    assert polls == []
    expect(page.locator("#incident-list")).not_to_contain_text("Opened while nobody looked")

    page.evaluate(_SET_VISIBILITY, False)
    # At once, not at the next 5-second tick.
    expect(page.locator("#incident-list")).to_contain_text(
        "Opened while nobody looked", timeout=2_000
    )


PHONE = {"width": 390, "height": 844}  # an iPhone 12-15's CSS viewport
_NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"
# Cells whose label (shown before them on a phone) is not their column's heading.
_UNLABELLED_CELLS = """selector => Array.from(document.querySelectorAll(selector))
  .filter(td => {
    const heading = td.closest('table').querySelectorAll('thead th')[td.cellIndex];
    return getComputedStyle(td, '::before').content.replace(/"/g, '') !== heading.textContent;
  })
  .map(td => td.outerHTML.slice(0, 80))"""


def test_on_a_phone_the_dashboard_and_incident_page_fit_and_every_field_is_labelled(
    page: Page, live_server: Any
) -> None:
    base = live_server.url
    page.set_viewport_size(PHONE)
    log_in(page, base)
    bob = UserFactory(username="bob")
    incident = IncidentFactory(
        title="Checkout returns 502 for every-customer-on-eu-west-1-behind-the-old-load-balancer",
        dedup_key="checkout-5xx-eu-west-1-" + "x" * 60,
    )
    for attempt in (1, 2):
        Notification.objects.create(
            incident=incident,
            user=bob,
            channel="ntfy",
            level=1,
            attempt=attempt,
            status=PageStatus.FAILED,
            error="connection refused by ntfy.internal.example.org:443",
            due_at=timezone.now(),
        )

    page.goto(f"{base}/")
    expect(page.locator("#incident-list")).to_contain_text("Checkout returns 502")
    assert page.evaluate(_NO_SIDEWAYS_SCROLL)
    assert page.evaluate(_UNLABELLED_CELLS, "table.incidents td") == []
    expect(page.locator("table.incidents thead")).to_be_hidden()

    page.goto(f"{base}/incidents/{incident.pk}")
    expect(page.locator(".pages-sent")).to_contain_text("connection refused")
    assert page.evaluate(_NO_SIDEWAYS_SCROLL)
    assert page.evaluate(_UNLABELLED_CELLS, ".pages-sent td") == []
    # The header's links stay reachable: they wrap instead of running off-screen.
    expect(
        page.get_by_role("navigation", name="Main").get_by_role("link", name="On call")
    ).to_be_in_viewport()
