"""who_is_on_call and shifts, including both DST transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User

from paging.models import Override, Rotation, RotationMember, Schedule
from paging.oncall import next_handoff, shifts, who_is_on_call
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
BERLIN = ZoneInfo("Europe/Berlin")


def rotation(
    schedule: Schedule, people: list[User], start: datetime, length: int, unit: str
) -> Rotation:
    made = Rotation.objects.create(
        schedule=schedule, name="primary", start=start, shift_length=length, shift_unit=unit
    )
    for position, person in enumerate(people):
        RotationMember.objects.create(rotation=made, user=person, position=position)
    return made


@pytest.fixture
def team() -> list[User]:
    return [UserFactory(username=name) for name in ("ana", "ben", "cy")]


@pytest.fixture
def berlin() -> Schedule:
    return Schedule.objects.create(name="Ops", slug="ops", time_zone="Europe/Berlin")


def names(people: list[User]) -> list[str]:
    return [person.username for person in people]


def test_weekly_rotation_takes_turns(berlin: Schedule, team: list[User]) -> None:
    rotation(berlin, team, datetime(2026, 1, 5, 9, tzinfo=BERLIN), 1, "weeks")
    assert names(who_is_on_call(berlin, at=datetime(2026, 1, 5, 9, tzinfo=BERLIN))) == ["ana"]
    assert names(who_is_on_call(berlin, at=datetime(2026, 1, 12, 8, 59, tzinfo=BERLIN))) == ["ana"]
    assert names(who_is_on_call(berlin, at=datetime(2026, 1, 12, 9, tzinfo=BERLIN))) == ["ben"]
    assert names(who_is_on_call(berlin, at=datetime(2026, 1, 26, 10, tzinfo=BERLIN))) == ["ana"]
    assert who_is_on_call(berlin, at=datetime(2026, 1, 1, tzinfo=BERLIN)) == []


@pytest.mark.parametrize(
    ("day_before", "day_after"),
    [
        # Spring forward: 2026-03-29 02:00 → 03:00 in Berlin.
        (datetime(2026, 3, 28, tzinfo=BERLIN), datetime(2026, 3, 29, tzinfo=BERLIN)),
        # Fall back: 2026-10-25 03:00 → 02:00 in Berlin.
        (datetime(2026, 10, 24, tzinfo=BERLIN), datetime(2026, 10, 25, tzinfo=BERLIN)),
    ],
)
def test_daily_handoff_stays_at_nine_local_across_dst(
    berlin: Schedule, team: list[User], day_before: datetime, day_after: datetime
) -> None:
    rotation(berlin, team, datetime(2026, 1, 1, 9, tzinfo=BERLIN), 1, "days")
    before = who_is_on_call(berlin, at=day_before.replace(hour=9))
    just_before_handoff = who_is_on_call(berlin, at=day_after.replace(hour=8, minute=59))
    after_handoff = who_is_on_call(berlin, at=day_after.replace(hour=9))
    assert just_before_handoff == before
    assert after_handoff != before
    # The handoff is at 09:00 local on both sides of the change, so its UTC
    # time moves by an hour.
    handoffs = [
        shift.start
        for shift in shifts(berlin, start=day_before, end=day_after + timedelta(days=1))
        if shift.start > day_before
    ]
    assert [h.astimezone(BERLIN).hour for h in handoffs] == [9, 9]
    assert {h.astimezone(UTC).hour for h in handoffs} == {7, 8}


def test_hour_shifts_are_absolute_durations_across_dst(berlin: Schedule, team: list[User]) -> None:
    rotation(berlin, team[:2], datetime(2026, 3, 28, 20, tzinfo=BERLIN), 12, "hours")
    # 20:00 + 12 real hours = 09:00 local on the day clocks jump forward.
    shift = shifts(
        berlin,
        start=datetime(2026, 3, 29, 5, tzinfo=BERLIN),
        end=datetime(2026, 3, 29, 12, tzinfo=BERLIN),
    )
    assert [s.start.astimezone(BERLIN).hour for s in shift] == [5, 9]
    assert names([s.user for s in shift]) == ["ana", "ben"]


def test_an_override_wins_and_an_override_of_an_override_wins_over_both(
    berlin: Schedule, team: list[User]
) -> None:
    ana, ben, cy = team
    rotation(berlin, [ana], datetime(2026, 1, 1, 9, tzinfo=BERLIN), 1, "weeks")
    day = datetime(2026, 2, 2, tzinfo=BERLIN)
    Override.objects.create(schedule=berlin, user=ben, start=day, end=day + timedelta(days=1))
    Override.objects.create(
        schedule=berlin, user=cy, start=day + timedelta(hours=12), end=day + timedelta(hours=13)
    )
    assert names(who_is_on_call(berlin, at=day + timedelta(hours=11))) == ["ben"]
    assert names(who_is_on_call(berlin, at=day + timedelta(hours=12, minutes=30))) == ["cy"]
    assert names(who_is_on_call(berlin, at=day + timedelta(hours=13))) == ["ben"]
    assert names(who_is_on_call(berlin, at=day + timedelta(days=1))) == ["ana"]
    final = shifts(berlin, start=day, end=day + timedelta(days=1, hours=1))
    assert [(s.user.username, s.start.astimezone(BERLIN).hour) for s in final] == [
        ("ben", 0),
        ("cy", 12),
        ("ben", 13),
        ("ana", 0),
    ]


def test_next_handoff_names_who_comes_next(berlin: Schedule, team: list[User]) -> None:
    rotation(berlin, team, datetime(2026, 1, 5, 9, tzinfo=BERLIN), 1, "weeks")
    upcoming = next_handoff(berlin, at=datetime(2026, 1, 6, tzinfo=BERLIN))
    assert upcoming is not None
    assert upcoming.user.username == "ben"
    assert upcoming.start == datetime(2026, 1, 12, 9, tzinfo=BERLIN)
