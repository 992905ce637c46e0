from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from redis import Redis

from accounts.tokens import NewToken
from incidents.models import Service
from paging.models import ContactMethod, NotificationRule, Rotation, RotationMember, Schedule
from tests.factories import IncidentFactory, UserFactory, contact, policy_with_levels

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops(alice: User) -> Schedule:
    schedule = Schedule.objects.create(name="Ops", slug="ops", time_zone="Europe/Berlin")
    rotation = Rotation.objects.create(
        schedule=schedule,
        name="primary",
        start=timezone.now() - timedelta(hours=1),
        shift_length=1,
        shift_unit="days",
    )
    RotationMember.objects.create(rotation=rotation, user=alice, position=0)
    RotationMember.objects.create(rotation=rotation, user=UserFactory(username="bob"), position=1)
    return schedule


def test_the_oncall_page_shows_now_next_and_two_weeks(alice_client: Client, ops: Schedule) -> None:
    html = alice_client.get("/oncall").content.decode()
    assert "<strong>alice</strong>" in html
    assert "bob from" in html
    assert html.count("<li><time") >= 14


def test_ical_feeds_need_a_login_or_a_token(
    client: Client, alice_client: Client, ops: Schedule, read_token: NewToken
) -> None:
    assert client.get("/oncall/ops.ics").status_code == 401
    assert client.get("/oncall/ops.ics?token=tri_wrong").status_code == 401
    feed = client.get(f"/oncall/ops.ics?token={read_token.raw}")
    assert feed.status_code == 200
    assert feed["Content-Type"].startswith("text/calendar")
    body = feed.content.decode()
    assert body.count("BEGIN:VEVENT") >= 8
    assert "On call: Ops (alice)" in body
    mine = alice_client.get("/oncall/people/alice.ics").content.decode()
    assert "On call: Ops (alice)" in mine
    assert "(bob)" not in mine
    assert alice_client.get("/oncall/nope.ics").status_code == 404


def test_a_responder_adds_a_contact_method_and_a_rule(alice_client: Client, alice: User) -> None:
    response = alice_client.post(
        "/account/notifications",
        {"method-name": "phone", "method-url": "ntfy://ntfy.sh/alice-pager"},
    )
    assert response.status_code == 302
    method = ContactMethod.objects.get(user=alice)
    assert method.scheme == "ntfy"
    alice_client.post(
        "/account/notifications", {"rule-contact_method": method.pk, "rule-delay_minutes": 5}
    )
    assert NotificationRule.objects.get().delay_minutes == 5
    html = alice_client.get("/account/notifications").content.decode()
    assert "after 5 min" in html
    assert "alice-pager" not in html  # URLs may hold secrets: only the scheme is shown


def test_a_bad_apprise_url_is_refused(alice_client: Client) -> None:
    response = alice_client.post(
        "/account/notifications", {"method-name": "x", "method-url": "definitely not a url"}
    )
    assert response.status_code == 422
    assert "Apprise does not recognise this URL" in response.content.decode()
    assert not ContactMethod.objects.exists()


def test_test_notification_and_removal_are_limited_to_ones_own_methods(
    alice_client: Client, alice: User
) -> None:
    mine = contact(alice)
    theirs = contact(UserFactory(username="bob"))
    assert alice_client.post(f"/account/notifications/{theirs.pk}/test").status_code == 404
    assert alice_client.post(f"/account/notifications/{theirs.pk}/delete").status_code == 404
    assert alice_client.post(f"/account/notifications/{mine.pk}/test").status_code == 302
    alice_client.post(f"/account/notifications/{mine.pk}/delete")
    assert list(ContactMethod.objects.all()) == [theirs]


@pytest.mark.django_db(transaction=True)
def test_the_dashboard_shows_who_is_paged_and_the_next_escalation(
    alice_client: Client, alice: User, web: Service, redis: Redis
) -> None:
    contact(alice)
    web.escalation_policy = policy_with_levels((15, [alice]), (15, [alice]))
    web.save()
    incident = IncidentFactory(service=web)
    html = alice_client.get("/").content.decode()
    assert f'data-incident="{incident.pk}"' in html
    row = html[html.index(f'data-incident="{incident.pk}"') :]
    row = row[: row.index("</tr>")]
    assert ">alice … queued</span></td>" in row
    assert "data-countdown" in row
    # With Redis emptied, the same comes from PostgreSQL.
    redis.flushdb()  # triage's database; parallel test workers use others of the same server
    again = alice_client.get("/").content.decode()
    assert ">alice … queued</span></td>" in again
    page = alice_client.get(f"/incidents/{incident.pk}").content.decode()
    assert "Pages" in page
    assert "no contact method" not in page
