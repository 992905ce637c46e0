"""The header's cover-request badge is cached per person under the settings'
version: an unchanged page asks PostgreSQL nothing about it, and every
change that moves the count shows on the next page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from redis import Redis
from time_machine import TimeMachineFixture

from paging import shift_selectors
from paging.models import CoverRequest, Rotation, RotationMember
from tests import test_shifts
from tests.test_shifts import BEN_START, NOW, as_, ask, badge, ops

pytestmark = pytest.mark.django_db
team = test_shifts.team  # the same four people on Ops


def cover_queries(client: Any, path: str = "/") -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return sum("paging_coverrequest" in query["sql"] for query in captured)


def test_an_unchanged_page_does_not_count_again(team: dict[str, User], redis: Redis) -> None:
    ask(as_(team["ben"]), team["dee"])
    dee = as_(team["dee"])
    assert cover_queries(dee) == 1
    assert cover_queries(dee) == 0
    assert badge(dee) == 1
    # Another person's count is their own.
    assert badge(as_(team["ana"])) is None


def test_joining_or_leaving_a_rotation_moves_the_count_at_once(
    team: dict[str, User], redis: Redis
) -> None:
    ask(as_(team["ben"]), None)  # anyone on Ops' rotations
    cy = as_(team["cy"])
    assert badge(cy) is None
    backup = Rotation.objects.create(
        schedule=ops(), name="backup", start=NOW, shift_length=1, shift_unit="days"
    )
    member = RotationMember.objects.create(rotation=backup, user=team["cy"], position=0)
    assert badge(cy) == 1
    member.delete()
    assert badge(cy) is None


def test_a_request_changed_in_the_admin_shows_at_once(team: dict[str, User], redis: Redis) -> None:
    ask(as_(team["ben"]), team["dee"])
    dee = as_(team["dee"])
    assert badge(dee) == 1
    cover = CoverRequest.objects.get()
    cover.asked = team["ana"]
    cover.save()
    assert badge(dee) is None
    assert badge(as_(team["ana"])) == 1
    cover.delete()
    assert badge(as_(team["ana"])) is None


def test_the_count_holds_only_for_the_time_it_was_read_in(
    team: dict[str, User], redis: Redis, time_machine: TimeMachineFixture
) -> None:
    ask(as_(team["ben"]), team["dee"], start=BEN_START)
    ask(as_(team["ana"]), team["dee"], start=BEN_START + timedelta(days=3))
    dee = team["dee"]
    assert shift_selectors.waiting_count(dee, now=NOW) == 2
    # The first request ends 6 hours after BEN_START (ask's default range).
    assert shift_selectors.waiting_count(dee, now=BEN_START + timedelta(hours=7)) == 1
    # A clock behind the one that counted does not trust its count either.
    assert shift_selectors.waiting_count(dee, now=NOW - timedelta(minutes=1)) == 2


def test_an_entry_it_did_not_write_is_counted_again(team: dict[str, User], redis: Redis) -> None:
    ask(as_(team["ben"]), team["dee"])
    dee = as_(team["dee"])
    redis.set(f"triage:covers:waiting:{team['dee'].pk}", b"not:an entry")
    assert badge(dee) == 1


def test_without_redis_every_page_counts_in_postgresql(
    team: dict[str, User], request: pytest.FixtureRequest
) -> None:
    ask(as_(team["ben"]), team["dee"])
    request.getfixturevalue("redis_unreachable")  # from here on
    with CaptureQueriesContext(connection) as captured:
        assert shift_selectors.waiting_count(team["dee"], now=NOW) == 1
        assert shift_selectors.waiting_count(team["dee"], now=NOW) == 1
    assert len(captured) == 2
