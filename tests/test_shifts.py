"""Responders take shifts and ask to be covered from /oncall; "My shifts"."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from redis import Redis
from time_machine import TimeMachineFixture

from paging import notify
from paging import shifts as services
from paging.models import (
    CoverRequest,
    Override,
    Rotation,
    RotationMember,
    Schedule,
    ShiftChange,
)
from paging.oncall import who_is_on_call
from tests.factories import UserFactory, contact
from tests.receiver import receiver

pytestmark = pytest.mark.django_db
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 12, 1, 12, tzinfo=BERLIN)
# Daily shifts from 09:00 Berlin: ana today, ben tomorrow, dee the day after.
BEN_START = datetime(2026, 12, 2, 9, tzinfo=BERLIN)
BEN_END = datetime(2026, 12, 3, 9, tzinfo=BERLIN)


@pytest.fixture
def team(time_machine: TimeMachineFixture) -> dict[str, User]:
    time_machine.move_to(NOW, tick=False)
    people = {
        name: UserFactory(username=name, first_name=name.title(), last_name="Lima")
        for name in ("ana", "ben", "dee", "cy")
    }
    schedule = Schedule.objects.create(name="Ops", slug="ops", time_zone="Europe/Berlin")
    rotation = Rotation.objects.create(
        schedule=schedule,
        name="primary",
        start=datetime(2026, 12, 1, 9, tzinfo=BERLIN),
        shift_length=1,
        shift_unit="days",
    )
    for position, name in enumerate(("ana", "ben", "dee")):  # cy is on no rotation
        RotationMember.objects.create(rotation=rotation, user=people[name], position=position)
    return people


def as_(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def ops() -> Schedule:
    return Schedule.objects.get(slug="ops")


def on_call(at: datetime) -> list[str]:
    return [person.username for person in who_is_on_call(ops(), at=at)]


def take(client: Client, start: datetime = BEN_START, end: datetime = BEN_END) -> Any:
    return client.post("/oncall/ops/take", {"start": start.isoformat(), "end": end.isoformat()})


def test_a_member_takes_a_shift_and_the_schedule_shows_it(team: dict[str, User]) -> None:
    client = as_(team["ana"])
    page = client.get("/oncall").content.decode()
    assert page.count(">Take this shift</button>") >= 10  # not her own shift of today
    assert f'name="start" value="{BEN_START.isoformat()}"' in page

    response = take(client)
    assert response.status_code == 302
    assert on_call(BEN_START + timedelta(hours=1)) == ["ana"]
    assert on_call(BEN_END) == ["dee"]
    page = client.get("/oncall").content.decode()
    assert "You are on call for Ops Wed 2026-12-02 09:00 to Thu 2026-12-03 09:00" in page
    assert "Ana Lima (ana) took Ops Wed 2026-12-02 09:00 to Thu 2026-12-03 09:00" in page
    # Her own shift and the one she took read as one, marked as taken.
    assert "<strong>ana</strong> <small>primary, then override</small>" in page
    change = ShiftChange.objects.get()
    assert (change.actor, change.at, change.override) == (team["ana"], NOW, Override.objects.get())


def test_taking_the_shift_under_way_starts_it_now(team: dict[str, User]) -> None:
    take(as_(team["ben"]), datetime(2026, 12, 1, 9, tzinfo=BERLIN), BEN_START)
    assert Override.objects.get().start == NOW
    assert on_call(NOW) == ["ben"]


def test_a_range_is_typed_in_the_schedules_time_zone(team: dict[str, User], settings: Any) -> None:
    settings.TIME_ZONE = "America/New_York"
    response = as_(team["dee"]).post(
        "/oncall/ops/take", {"start": "2026-12-02T18:00", "end": "2026-12-02T22:00"}
    )
    assert response.status_code == 302
    override = Override.objects.get()
    assert override.start == datetime(2026, 12, 2, 18, tzinfo=BERLIN)
    assert on_call(datetime(2026, 12, 2, 19, tzinfo=BERLIN)) == ["dee"]
    assert on_call(datetime(2026, 12, 2, 22, tzinfo=BERLIN)) == ["ben"]


def test_someone_on_no_rotation_of_the_schedule_cannot_take_a_shift(
    team: dict[str, User],
) -> None:
    response = take(as_(team["cy"]))
    assert response.status_code == 403
    assert "You are not on a rotation of Ops." in response.content.decode()
    assert not Override.objects.exists()
    assert not ShiftChange.objects.exists()


def test_staff_may_take_any_shift(team: dict[str, User], root: User) -> None:
    assert take(as_(root)).status_code == 302
    assert on_call(BEN_START) == ["root"]


def test_a_shift_someone_already_took_cannot_be_taken_again(team: dict[str, User]) -> None:
    take(as_(team["ana"]))
    response = take(as_(team["dee"]))
    assert response.status_code == 409
    assert "Ana Lima (ana) already took Wed 2026-12-02 09:00" in response.content.decode()
    assert Override.objects.count() == 1
    assert on_call(BEN_START) == ["ana"]


@pytest.mark.parametrize(
    ("start", "end", "says"),
    [
        ("2026-12-02T09:00", "2026-12-02T08:00", "The end must be after the start."),
        ("2026-11-01T09:00", "2026-11-02T08:00", "This time is already over."),
        ("2026-12-02T09:00", "2027-02-02T08:00", "At most 31 days at once"),
        ("tomorrow", "2026-12-02T08:00", "start: Enter a valid date/time."),
        ("2026-12-02T09:00\x00", "2026-12-03T08:00", "start: "),
    ],
)
def test_a_bad_range_is_refused_and_changes_nothing(
    team: dict[str, User], start: str, end: str, says: str
) -> None:
    response = as_(team["ana"]).post("/oncall/ops/take", {"start": start, "end": end})
    assert response.status_code in (400, 409)
    assert says in response.content.decode()
    assert not Override.objects.exists()
    assert not ShiftChange.objects.exists()


def test_an_unknown_schedule_is_a_404(team: dict[str, User]) -> None:
    response = as_(team["ana"]).post("/oncall/nope/take", {"start": "x", "end": "y"})
    assert response.status_code == 404


def test_forms_need_the_csrf_token(team: dict[str, User]) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(team["ana"])
    assert take(browser).status_code == 403
    cover = ask(browser, team["ben"])
    assert cover.status_code == 403
    assert not Override.objects.exists()
    assert not CoverRequest.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_people_taking_the_same_shift_at_once_leave_one_override(
    team: dict[str, User],
) -> None:
    # ana's transaction takes the shift and holds its commit; dee's must wait
    # for it, then see ana's override and be refused. Without the schedule
    # lock dee would not see the uncommitted override and write a second one.
    holding, release = threading.Event(), threading.Event()
    outcome: dict[str, str] = {}

    def ana_takes() -> None:
        with transaction.atomic():
            services.take_shift(ops(), actor=team["ana"], start=BEN_START, end=BEN_END, now=NOW)
            holding.set()
            release.wait(timeout=30)
        connections.close_all()

    def dee_takes() -> None:
        try:
            services.take_shift(ops(), actor=team["dee"], start=BEN_START, end=BEN_END, now=NOW)
            outcome["dee"] = "took it"
        except services.ShiftRefused as refused:
            outcome["dee"] = str(refused)
        finally:
            connections.close_all()

    first = threading.Thread(target=ana_takes)
    first.start()
    assert holding.wait(timeout=30)
    second = threading.Thread(target=dee_takes)
    second.start()
    waited = wait_until_a_query_waits_for_a_lock()
    release.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert [o.user.username for o in Override.objects.all()] == ["ana"]
    assert outcome["dee"].startswith("Ana Lima (ana) already took")
    assert waited


def wait_until_a_query_waits_for_a_lock() -> bool:
    """Asks PostgreSQL (no sleeping) until a backend of this database is
    blocked on a lock, for at most 10 s (without the lock nobody ever is: dee
    then writes her override at once and the test's assertions say so)."""
    deadline = time.monotonic() + 10
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone():
                return True
    return False


# --- cover me -------------------------------------------------------------------


def ask(client: Client, whom: User | None, start: datetime = BEN_START) -> Any:
    return client.post(
        "/oncall/ops/cover",
        {
            "start": start.isoformat(),
            "end": (start + timedelta(hours=6)).isoformat(),
            "asked": whom.pk if whom else "",
            "note": "dentist",
        },
    )


def test_asking_for_cover_changes_nothing_until_the_person_asked_accepts(
    team: dict[str, User],
) -> None:
    ben = as_(team["ben"])
    response = ask(ben, team["dee"])
    assert response.status_code == 302
    assert response["Location"] == "/oncall/mine"
    assert "Asked Dee Lima (dee) to cover you." in ben.get("/oncall/mine").content.decode()
    assert on_call(BEN_START) == ["ben"]
    assert "ben asks dee to cover" in ben.get("/oncall").content.decode()

    dee = as_(team["dee"])
    mine = dee.get("/oncall/mine").content.decode()
    assert "<strong>Ben Lima</strong> asks you to cover <strong>Ops</strong>" in mine
    assert "dentist" in mine
    cover = CoverRequest.objects.get()
    assert dee.post(f"/oncall/cover/{cover.pk}/accept").status_code == 302
    assert on_call(BEN_START) == ["dee"]
    assert on_call(BEN_START + timedelta(hours=6)) == ["ben"]
    cover.refresh_from_db()
    assert (cover.status, cover.decided_by, cover.decided_at) == ("accepted", team["dee"], NOW)
    assert cover.override is not None
    theirs = ben.get("/oncall/mine").content.decode()
    assert "<strong>Accepted</strong> by dee" in theirs
    assert "Dee Lima (dee) covers Ben Lima (ben) on Ops Wed 2026-12-02 09:00" in theirs
    assert [c.actor.username for c in ShiftChange.objects.order_by("pk")] == ["ben", "dee"]


def test_the_person_asked_declines_and_the_schedule_is_unchanged(
    team: dict[str, User],
) -> None:
    ask(as_(team["ben"]), team["dee"])
    cover = CoverRequest.objects.get()
    response = as_(team["dee"]).post(f"/oncall/cover/{cover.pk}/decline", follow=True)
    assert "Declined: the schedule is unchanged." in response.content.decode()
    cover.refresh_from_db()
    assert cover.status == "declined"
    assert on_call(BEN_START) == ["ben"]
    assert not Override.objects.exists()
    assert "Declined</strong> by dee" in as_(team["ben"]).get("/oncall/mine").content.decode()
    again = as_(team["dee"]).post(f"/oncall/cover/{cover.pk}/accept")
    assert again.status_code == 409
    assert "This request was already answered: declined." in again.content.decode()
    assert not Override.objects.exists()


def test_a_request_for_time_someone_else_took_meanwhile_cannot_be_accepted(
    team: dict[str, User],
) -> None:
    ask(as_(team["ben"]), team["dee"])
    take(as_(team["ana"]))
    cover = CoverRequest.objects.get()
    response = as_(team["dee"]).post(f"/oncall/cover/{cover.pk}/accept")
    assert response.status_code == 409
    assert "Ana Lima (ana) already took" in response.content.decode()
    cover.refresh_from_db()
    assert cover.status == "pending"
    assert on_call(BEN_START) == ["ana"]


def test_only_the_person_asked_answers(team: dict[str, User]) -> None:
    ask(as_(team["ben"]), team["dee"])
    cover = CoverRequest.objects.get()
    for name in ("ana", "cy", "ben"):
        for verb in ("accept", "decline"):
            response = as_(team[name]).post(f"/oncall/cover/{cover.pk}/{verb}")
            assert response.status_code == 403, (name, verb)
    assert as_(team["dee"]).post(f"/oncall/cover/{cover.pk}/cancel").status_code == 403
    cover.refresh_from_db()
    assert cover.status == "pending"
    assert not Override.objects.exists()


def test_the_requester_cancels_and_nobody_can_accept_after(team: dict[str, User]) -> None:
    ask(as_(team["ben"]), team["dee"])
    cover = CoverRequest.objects.get()
    assert as_(team["ben"]).post(f"/oncall/cover/{cover.pk}/cancel").status_code == 302
    assert as_(team["dee"]).post(f"/oncall/cover/{cover.pk}/accept").status_code == 409
    assert (
        "Nobody is waiting for your answer."
        in as_(team["dee"]).get("/oncall/mine").content.decode()
    )
    assert not Override.objects.exists()


def test_a_request_to_the_rotation_is_accepted_by_any_other_member(
    team: dict[str, User],
) -> None:
    ask(as_(team["ben"]), None)
    cover = CoverRequest.objects.get()
    assert "anyone on the rotation" in as_(team["ana"]).get("/oncall/mine").content.decode()
    assert "Nobody is waiting" in as_(team["cy"]).get("/oncall/mine").content.decode()
    assert "Nobody is waiting" in as_(team["ben"]).get("/oncall/mine").content.decode()
    assert as_(team["cy"]).post(f"/oncall/cover/{cover.pk}/accept").status_code == 403
    assert as_(team["ana"]).post(f"/oncall/cover/{cover.pk}/decline").status_code == 403
    assert as_(team["ana"]).post(f"/oncall/cover/{cover.pk}/accept").status_code == 302
    assert on_call(BEN_START) == ["ana"]
    assert as_(team["dee"]).post(f"/oncall/cover/{cover.pk}/accept").status_code == 409


def test_staff_may_answer_any_request(team: dict[str, User], root: User) -> None:
    ask(as_(team["ben"]), team["dee"])
    cover = CoverRequest.objects.get()
    assert as_(root).post(f"/oncall/cover/{cover.pk}/cancel").status_code == 302
    cover.refresh_from_db()
    assert (cover.status, cover.decided_by) == ("cancelled", root)


def test_only_teammates_can_be_asked(team: dict[str, User]) -> None:
    response = ask(as_(team["ben"]), team["cy"])
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    response = ask(as_(team["cy"]), team["ben"])
    assert response.status_code == 403
    assert not CoverRequest.objects.exists()
    with pytest.raises(services.ShiftRefused, match="Ask someone else"):
        services.ask_cover(
            ops(), actor=team["ben"], start=BEN_START, end=BEN_END, asked=team["ben"], now=NOW
        )


def test_a_request_whose_time_passed_cannot_be_accepted(
    team: dict[str, User], time_machine: TimeMachineFixture
) -> None:
    ask(as_(team["ben"]), team["dee"])
    time_machine.move_to(BEN_END, tick=False)
    cover = CoverRequest.objects.get()
    response = as_(team["dee"]).post(f"/oncall/cover/{cover.pk}/accept")
    assert response.status_code == 409
    assert "already over" in response.content.decode()


# --- my shifts -------------------------------------------------------------------


def test_my_shifts_lists_my_next_shifts_and_my_calendar_link(team: dict[str, User]) -> None:
    take(as_(team["ben"]), datetime(2026, 12, 1, 18, tzinfo=BERLIN), BEN_START)
    page = as_(team["ben"]).get("/oncall/mine").content.decode()
    assert "Tue 2026-12-01 18:00" in page  # the override
    assert "Wed 2026-12-02 09:00" in page  # the rotation's shift
    assert page.count("<strong>Ops</strong>") >= 5
    assert "http://testserver/oncall/people/ben.ics" in page
    assert "You are not on call" in as_(team["cy"]).get("/oncall/mine").content.decode()


# --- telling the people asked -----------------------------------------------------


def test_asking_queues_a_notification_once_the_request_is_committed(
    team: dict[str, User], redis: Redis, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        ask(as_(team["ben"]), team["dee"])
    assert redis.llen("celery") == 0  # nothing is sent before the commit
    for callback in callbacks:
        callback()
    queued = [json.loads(raw) for raw in redis.lrange("celery", 0, -1)]
    tasks = [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in queued]
    assert tasks == [("paging.tell_about_cover", f"[{CoverRequest.objects.get().pk}]")]


def test_the_person_asked_hears_of_it_through_their_contact_method(
    team: dict[str, User], outbound_loopback: Any
) -> None:
    with receiver() as inbox:
        contact(team["dee"], inbox.url)
        contact(team["ana"], inbox.url)
        ask(as_(team["ben"]), team["dee"])
        cover = CoverRequest.objects.get()
        assert notify.tell_about_cover(cover.pk) == 1
    [message] = inbox.messages
    assert message["title"] == "Ben Lima (ben) asks you to cover Ops"
    assert "Wed 2026-12-02 09:00 to Wed 2026-12-02 15:00 (Europe/Berlin)" in message["message"]
    assert "“dentist”" in message["message"]
    assert "/oncall/mine" in message["message"]


def test_a_request_to_the_rotation_tells_every_other_member_while_it_is_pending(
    team: dict[str, User], outbound_loopback: Any
) -> None:
    with receiver() as inbox:
        for name in ("ana", "ben", "dee", "cy"):
            contact(team[name], inbox.url)
        ask(as_(team["ben"]), None)
        cover = CoverRequest.objects.get()
        assert notify.tell_about_cover(cover.pk) == 2  # ana and dee
        as_(team["ben"]).post(f"/oncall/cover/{cover.pk}/cancel")
        assert notify.tell_about_cover(cover.pk) == 0
    assert len(inbox.messages) == 2


# --- the header's badge: requests waiting for your answer ------------------------

BADGE = re.compile(
    r'<a href="/oncall/mine"[^>]*>My shifts <span class="nav-badge" title="(\d+) cover '
    r'requests? waiting for your answer">'
)


def badge(client: Client, path: str = "/") -> int | None:
    page = client.get(path).content.decode()
    header = page[page.index('<header class="topbar">') : page.index("</header>")]
    found = BADGE.search(header)
    return int(found.group(1)) if found else None


def test_the_person_asked_sees_a_count_until_they_answer(team: dict[str, User]) -> None:
    ask(as_(team["ben"]), team["dee"])
    ask(as_(team["ana"]), team["dee"], start=BEN_START + timedelta(days=1))
    dee = as_(team["dee"])
    assert badge(dee) == 2
    assert badge(dee, "/oncall/mine") == 2
    assert badge(as_(team["ben"])) is None  # asking is not being asked
    assert badge(as_(team["cy"])) is None

    first, second = CoverRequest.objects.order_by("pk")
    assert dee.post(f"/oncall/cover/{first.pk}/accept").status_code == 302
    assert badge(dee) == 1
    assert dee.post(f"/oncall/cover/{second.pk}/decline").status_code == 302
    assert badge(dee) is None


def test_a_request_to_the_rotation_counts_once_for_each_other_member(
    team: dict[str, User],
) -> None:
    # ana is on a second rotation of the same schedule: still one request.
    backup = Rotation.objects.create(
        schedule=ops(), name="backup", start=NOW, shift_length=1, shift_unit="days"
    )
    RotationMember.objects.create(rotation=backup, user=team["ana"], position=0)
    ask(as_(team["ben"]), None)
    assert badge(as_(team["ana"])) == 1
    assert badge(as_(team["dee"])) == 1
    assert badge(as_(team["ben"])) is None
    assert badge(as_(team["cy"])) is None
    cover = CoverRequest.objects.get()
    assert as_(team["ben"]).post(f"/oncall/cover/{cover.pk}/cancel").status_code == 302
    assert badge(as_(team["ana"])) is None


def test_a_request_whose_time_passed_no_longer_counts(
    team: dict[str, User], time_machine: TimeMachineFixture
) -> None:
    ask(as_(team["ben"]), team["dee"])
    assert badge(as_(team["dee"])) == 1
    time_machine.move_to(BEN_START + timedelta(hours=6, seconds=1), tick=False)
    assert badge(as_(team["dee"])) is None


def test_the_badge_costs_one_query_however_many_requests_wait(team: dict[str, User]) -> None:
    dee = as_(team["dee"])

    def badge_queries() -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            assert dee.get("/").status_code == 200
        return [query["sql"] for query in captured if "paging_" in query["sql"]]

    none = badge_queries()
    for day in range(5):
        ask(as_(team["ben"]), team["dee"], start=BEN_START + timedelta(days=3 * day))
    ask(as_(team["ana"]), None, start=BEN_START + timedelta(days=2))
    six = badge_queries()
    assert badge(dee) == 6
    assert len(none) == len(six) == 1
    assert "paging_coverrequest" in six[0]
