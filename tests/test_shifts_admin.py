"""Staff's admin for schedules and policies: members on the schedule's page,
people by full name, and each policy in plain words."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.test import Client

from paging.models import EscalationLevel, Rotation, RotationMember, Schedule
from paging.policy_text import describe_policy
from tests.factories import PolicyFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(root: User) -> Client:
    client = Client()
    client.force_login(root)
    return client


@pytest.fixture
def primary() -> Schedule:
    schedule = Schedule.objects.create(name="Primary", slug="primary")
    rotation = Rotation.objects.create(
        schedule=schedule, name="weekly", start=datetime(2026, 1, 5, 9, tzinfo=UTC)
    )
    for position, name in enumerate(("ana", "ben")):
        person = UserFactory(username=name, first_name=name.title(), last_name="Lima")
        RotationMember.objects.create(rotation=rotation, user=person, position=position)
    UserFactory(username="dee", first_name="Dee", last_name="Kahn")
    return schedule


def schedule_form(schedule: Schedule, members: str) -> dict[str, str]:
    rotation = schedule.rotations.get()
    return {
        "name": schedule.name,
        "slug": schedule.slug,
        "time_zone": schedule.time_zone,
        "description": "",
        "rotations-TOTAL_FORMS": "1",
        "rotations-INITIAL_FORMS": "1",
        "rotations-MIN_NUM_FORMS": "0",
        "rotations-MAX_NUM_FORMS": "1000",
        "rotations-0-id": str(rotation.pk),
        "rotations-0-schedule": str(schedule.pk),
        "rotations-0-name": rotation.name,
        "rotations-0-start_0": "2026-01-05",
        "rotations-0-start_1": "09:00:00",
        "rotations-0-shift_length": "1",
        "rotations-0-shift_unit": "weeks",
        "rotations-0-members": members,
        "overrides-TOTAL_FORMS": "0",
        "overrides-INITIAL_FORMS": "0",
        "overrides-MIN_NUM_FORMS": "0",
        "overrides-MAX_NUM_FORMS": "1000",
    }


def turn_order(schedule: Schedule) -> list[str]:
    return [m.user.username for m in RotationMember.objects.filter(rotation__schedule=schedule)]


def test_the_schedules_page_edits_its_rotations_members_in_turn_order(
    admin_client: Client, primary: Schedule
) -> None:
    url = f"/admin/paging/schedule/{primary.pk}/change/"
    assert 'value="ana, ben"' in admin_client.get(url).content.decode()
    response = admin_client.post(url, schedule_form(primary, "dee, ana , ben"))
    assert response.status_code == 302
    assert turn_order(primary) == ["dee", "ana", "ben"]


def test_an_unknown_member_is_refused_and_nothing_changes(
    admin_client: Client, primary: Schedule
) -> None:
    url = f"/admin/paging/schedule/{primary.pk}/change/"
    response = admin_client.post(url, schedule_form(primary, "dee, zed"))
    assert response.status_code == 200
    assert "Nobody has the username zed." in response.content.decode()
    assert turn_order(primary) == ["ana", "ben"]


def test_people_pickers_show_full_names(admin_client: Client, primary: Schedule) -> None:
    schedule_page = admin_client.get(f"/admin/paging/schedule/{primary.pk}/change/")
    assert ">Dee Kahn (dee)</option>" in schedule_page.content.decode()  # overrides
    rotation = primary.rotations.get()
    rotation_page = admin_client.get(f"/admin/paging/rotation/{rotation.pk}/change/")
    assert ">Ana Lima (ana)</option>" in rotation_page.content.decode()
    policy = PolicyFactory(name="Web")
    EscalationLevel.objects.create(policy=policy, position=0)
    policy_page = admin_client.get(f"/admin/paging/escalationpolicy/{policy.pk}/change/")
    assert ">Ben Lima (ben)</option>" in policy_page.content.decode()


def test_each_policy_reads_in_plain_words(admin_client: Client, primary: Schedule) -> None:
    policy = PolicyFactory(name="Web", repeat_count=2)
    first = EscalationLevel.objects.create(policy=policy, position=0, delay_minutes=10)
    first.schedules.add(primary)
    second = EscalationLevel.objects.create(policy=policy, position=1, delay_minutes=15)
    second.users.add(User.objects.get(username="ben"))
    words = (
        "page whoever is on call for Primary at once; after 10 min page Ben Lima; "
        "after 15 min repeat from the top twice"
    )
    assert describe_policy(policy) == words
    assert words in admin_client.get("/admin/paging/escalationpolicy/").content.decode()
    page = admin_client.get(f"/admin/paging/escalationpolicy/{policy.pk}/change/")
    assert words in page.content.decode()


def test_plain_words_for_short_and_empty_policies(primary: Schedule) -> None:
    policy = PolicyFactory(name="Empty", repeat_count=0)
    assert describe_policy(policy) == "pages nobody: add a level"
    level = EscalationLevel.objects.create(policy=policy, position=0)
    assert describe_policy(policy) == "page nobody (this level names no one) at once"
    level.users.add(*User.objects.filter(username__in=["ana", "ben"]).order_by("username"))
    level.schedules.add(primary)
    policy.repeat_count = 5
    assert describe_policy(policy) == (
        "page Ana Lima, Ben Lima and whoever is on call for Primary at once; "
        "after 15 min repeat from the top 5 times"
    )


def test_the_audit_trail_is_read_only_in_the_admin(admin_client: Client) -> None:
    assert admin_client.get("/admin/paging/shiftchange/").status_code == 200
    assert admin_client.get("/admin/paging/shiftchange/add/").status_code == 403
    assert admin_client.get("/admin/paging/coverrequest/").status_code == 200
