"""Shifts by responders in a real Chromium: take a shift from /oncall, ask a
teammate to cover, and the teammate accepts or declines from "My shifts"."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Page, expect

from paging.models import CoverRequest, Override, Rotation, RotationMember, Schedule
from tests.factories import UserFactory

# Fixtures of the browser tests: Debian's Chromium, plain static files, and a
# failure on any Content-Security-Policy violation.
from tests.test_browser import (  # noqa: F401
    _plain_static_files,
    browser_type_launch_args,
    no_policy_violations,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def a_team() -> dict[str, User]:
    """ana on call now (daily shifts, UTC), ben next."""
    people = {
        name: UserFactory(username=name, first_name=name.title(), last_name="Lima")
        for name in ("ana", "ben")
    }
    schedule = Schedule.objects.create(name="Ops", slug="ops", time_zone="UTC")
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=1)
    rotation = Rotation.objects.create(
        schedule=schedule, name="primary", start=start, shift_length=1, shift_unit="days"
    )
    for position, name in enumerate(("ana", "ben")):
        RotationMember.objects.create(rotation=rotation, user=people[name], position=position)
    return people


def sign_in(page: Page, base: str, username: str) -> None:
    page.context.clear_cookies()
    page.goto(f"{base}/login?next=/oncall")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("a-long-test-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="On call", exact=True)).to_be_visible()


def test_a_responder_takes_a_teammates_shift(page: Page, live_server: Any) -> None:
    base = live_server.url
    team = a_team()
    sign_in(page, base, "ana")
    # Her own shift has no button; ben's next one does.
    page.get_by_role("button", name=re.compile(r"^Take this shift of ben")).first.click()
    expect(page.get_by_text(re.compile(r"You are on call for Ops \w{3} \d{4}"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"Ana Lima \(ana\) took Ops"))).to_be_visible()
    shifts = page.locator("ol.shifts li")
    expect(shifts.nth(0)).to_contain_text("ana")
    expect(shifts.nth(0)).to_contain_text("override")
    assert Override.objects.get().user == team["ana"]


def ask_ana_to_cover(page: Page, base: str) -> None:
    sign_in(page, base, "ben")
    page.get_by_text("Cover me on Ops").click()
    form = page.locator("form[action='/oncall/ops/cover']")
    tomorrow = timezone.now() + timedelta(days=1)
    form.get_by_label("From").fill(f"{tomorrow:%Y-%m-%d}T10:00")
    form.get_by_label("To").fill(f"{tomorrow:%Y-%m-%d}T14:00")
    form.get_by_label("Ask").select_option(label="Ana Lima (ana)")
    form.get_by_label("Note").fill("dentist")
    form.get_by_role("button", name="Ask for cover").click()
    expect(page.get_by_text("Asked Ana Lima (ana) to cover you.")).to_be_visible()
    expect(page.get_by_text("Waiting for an answer")).to_be_visible()
    assert not Override.objects.exists()  # nothing changes until ana answers
    sign_in(page, base, "ana")
    page.get_by_role("navigation", name="Account").get_by_role("link", name="My shifts").click()
    expect(page.get_by_text("dentist")).to_be_visible()


def test_a_teammate_accepts_a_cover_request(page: Page, live_server: Any) -> None:
    base = live_server.url
    team = a_team()
    ask_ana_to_cover(page, base)
    page.get_by_role("button", name="Accept").click()
    expect(page.get_by_text("Thank you: you are on call for that time now.")).to_be_visible()
    expect(
        page.get_by_text(re.compile(r"Ana Lima \(ana\) covers Ben Lima \(ben\)"))
    ).to_be_visible()
    override = Override.objects.get()
    assert (override.user, override.end - override.start) == (team["ana"], timedelta(hours=4))
    assert CoverRequest.objects.get().status == "accepted"


def test_a_teammate_declines_a_cover_request(page: Page, live_server: Any) -> None:
    base = live_server.url
    a_team()
    ask_ana_to_cover(page, base)
    page.get_by_role("button", name="Decline").click()
    expect(page.get_by_text("Declined: the schedule is unchanged.")).to_be_visible()
    expect(page.get_by_text("Nobody is waiting for your answer.")).to_be_visible()
    sign_in(page, base, "ben")
    page.goto(f"{base}/oncall/mine")
    expect(page.get_by_text(re.compile(r"Declined\s+by ana"))).to_be_visible()
    assert not Override.objects.exists()
