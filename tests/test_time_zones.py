"""Each person sees every time in their own zone, labelled; schedules hand off
in theirs; the API and the shared dashboard cache stay zone-free."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.test import Client
from redis import Redis
from time_machine import TimeMachineFixture

from accounts.models import Profile
from accounts.timezones import SESSION_KEY
from incidents.models import Incident, Service
from paging.models import MaintenanceWindow, Rotation, RotationMember, Schedule
from tests.factories import IncidentFactory, UserFactory, contact, policy_with_levels

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # a Monday; 12:00 in Tokyo
BROWSER = "/account/settings/browser-time-zone"


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def choose(client: Client, zone: str) -> None:
    response = client.post("/account/settings", {"time_zone": zone})
    assert response.status_code == 302, response.content[:300]


def zone_of(user: User) -> str:
    return Profile.objects.get(user=user).time_zone


@pytest.fixture
def opened_at_t0(time_machine: TimeMachineFixture) -> Incident:
    time_machine.move_to(T0, tick=False)
    incident: Incident = IncidentFactory(title="checkout 502")
    return incident


def test_a_chosen_zone_shows_every_time_of_the_incident_page_in_it_labelled(
    alice_client: Client, opened_at_t0: Incident
) -> None:
    path = f"/incidents/{opened_at_t0.pk}"
    before = alice_client.get(path).content.decode()
    assert "2026-11-23 03:00:00 UTC" in before

    choose(alice_client, "Asia/Tokyo")
    page = alice_client.get(path).content.decode()
    assert "2026-11-23 12:00:00 JST" in page  # opened
    assert "03:00:00 UTC" not in page  # nor on the timeline: every time is in JST
    assert page.count("12:00:00 JST") >= 2


def test_the_settings_page_is_in_the_account_menu_and_says_which_zone_applies(
    alice: User, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(T0, tick=False)
    Profile.objects.create(user=alice, time_zone="Europe/Berlin")
    alice_client = signed_in(alice)  # the zone is read at sign-in
    page = alice_client.get("/account/settings").content.decode()
    assert '<a href="/account/settings" aria-current="page">Settings</a>' in page
    assert "now <strong>2026-11-23 04:00 CET</strong> (Europe/Berlin)" in page
    assert '<option value="Europe/Berlin" selected>Europe/Berlin</option>' in page

    choose(alice_client, "America/New_York")
    page = alice_client.get("/account/settings").content.decode()
    assert "Times are now shown in America/New_York." in page
    assert "now <strong>2026-11-22 22:00 EST</strong>" in page
    assert zone_of(alice) == "America/New_York"


@pytest.mark.parametrize("junk", ["Mars/Olympus_Mons", "", "UTC\x00", "Europe/../etc/passwd"])
def test_a_zone_that_is_not_an_iana_name_is_refused_and_nothing_is_stored(
    alice_client: Client, alice: User, junk: str
) -> None:
    response = alice_client.post("/account/settings", {"time_zone": junk})
    assert response.status_code in (400, 422)
    assert alice_client.post(BROWSER, {"time_zone": junk}).status_code in (400, 422)
    assert not Profile.objects.filter(user=alice).exists()


def test_the_first_signed_in_page_asks_the_browser_for_its_zone_and_stores_it(
    alice_client: Client, alice: User, opened_at_t0: Incident
) -> None:
    page = alice_client.get("/").content.decode()
    assert f'data-time-zone-url="{BROWSER}"' in page

    answer = alice_client.post(BROWSER, {"time_zone": "Asia/Tokyo"})
    assert json.loads(answer.content) == {"stored": True, "time_zone": "Asia/Tokyo"}
    assert zone_of(alice) == "Asia/Tokyo"
    page = alice_client.get(f"/incidents/{opened_at_t0.pk}").content.decode()
    assert "data-time-zone-url" not in page  # asked once: the zone is known now
    assert "2026-11-23 12:00:00 JST" in page


def test_a_browser_guess_never_replaces_a_zone_the_person_has(alice: User) -> None:
    laptop, phone = signed_in(alice), signed_in(alice)
    choose(laptop, "Europe/Berlin")
    answer = phone.post(BROWSER, {"time_zone": "Asia/Tokyo"})
    assert json.loads(answer.content) == {"stored": False, "time_zone": "Europe/Berlin"}
    assert zone_of(alice) == "Europe/Berlin"
    # The phone's session follows what is stored: its pages are in Berlin time.
    assert "(Europe/Berlin)" in phone.get("/account/settings").content.decode()


def test_a_zone_this_machine_no_longer_knows_falls_back_to_the_servers(
    alice: User, opened_at_t0: Incident
) -> None:
    Profile.objects.create(user=alice, time_zone="Atlantis/Capital")
    page = signed_in(alice).get(f"/incidents/{opened_at_t0.pk}").content.decode()
    assert "2026-11-23 03:00:00 UTC" in page


def test_a_session_from_before_time_zones_reads_the_zone_once(
    alice_client: Client, alice: User, opened_at_t0: Incident
) -> None:
    Profile.objects.create(user=alice, time_zone="Asia/Tokyo")
    session = alice_client.session
    del session[SESSION_KEY]
    session.save()
    assert (
        "2026-11-23 12:00:00 JST"
        in alice_client.get(f"/incidents/{opened_at_t0.pk}").content.decode()
    )
    assert alice_client.session[SESSION_KEY] == "Asia/Tokyo"


def test_api_answers_stay_in_utc_whatever_the_viewers_zone(
    alice_client: Client, opened_at_t0: Incident
) -> None:
    choose(alice_client, "Asia/Tokyo")
    answer = alice_client.get(
        f"/incidents/{opened_at_t0.pk}", headers={"Accept": "application/json"}
    )
    assert json.loads(answer.content)["opened_at"] == "2026-11-23T03:00:00+00:00"


def new_york_schedule(people: list[User]) -> Schedule:
    """Daily handoffs at 09:00 New York time (14:00 UTC in November)."""
    schedule = Schedule.objects.create(name="Ops", slug="ops", time_zone="America/New_York")
    start = datetime(2026, 11, 2, 9, tzinfo=ZoneInfo("America/New_York"))
    rotation = Rotation.objects.create(
        schedule=schedule, name="primary", start=start, shift_length=1, shift_unit="days"
    )
    for position, person in enumerate(people):
        RotationMember.objects.create(rotation=rotation, user=person, position=position)
    return schedule


def test_oncall_shows_shifts_in_the_viewers_zone_and_handoffs_in_the_schedules(
    alice: User, alice_client: Client, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(T0, tick=False)
    new_york_schedule([UserFactory(username="ana"), UserFactory(username="ben")])
    choose(alice_client, "Europe/Berlin")
    page = alice_client.get("/oncall").content.decode()
    # The shift from Monday 09:00 in New York is 15:00 in Berlin, labelled.
    assert "Mon 2026-11-23 15:00 CET</time> → " in page
    assert "(Mon 09:00 EST → Tue 09:00 EST in the schedule's zone)" in page

    # Someone in the schedule's own zone sees one time only.
    choose(alice_client, "America/New_York")
    page = alice_client.get("/oncall").content.decode()
    assert "Mon 2026-11-23 09:00 EST</time> → " in page
    assert "in the schedule's zone" not in page


@pytest.mark.django_db(transaction=True)
def test_the_cached_dashboard_shows_each_viewer_times_in_their_own_zone(
    web: Service, redis: Redis, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(T0, tick=False)
    ana, bob = UserFactory(username="ana"), UserFactory(username="bob")
    contact(ana)
    web.escalation_policy = policy_with_levels((30, [ana]), (30, [bob]))
    web.save()
    MaintenanceWindow.objects.create(service=web, start=T0, end=T0 + timedelta(hours=1))
    incident = IncidentFactory(service=web)
    tokyo, server = signed_in(UserFactory(username="kenji")), signed_in(ana)
    choose(tokyo, "Asia/Tokyo")

    def row(client: Client) -> str:
        html = client.get("/").content.decode()
        return html.split(f'data-incident="{incident.pk}"', 1)[1].split("</tr>", 1)[0]

    # The first reader fills the cache; the second reads the same entry.
    assert "held by a maintenance window until 13:00 JST" in row(tokyo)
    assert "held by a maintenance window until 04:00 UTC" in row(server)
    assert "13:00 JST" in row(tokyo)
