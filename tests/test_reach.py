"""Delivery truth, early escalation, "nobody reached" and what happens next
(issue 14), against real PostgreSQL and Redis with time travel."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from redis import Redis
from time_machine import TimeMachineFixture

from incidents import services
from incidents.models import EventKind, Incident, Service
from integrations.tasks import check_heartbeats
from paging import escalation, metrics, notify, state
from paging.models import (
    ContactMethod,
    MaintenanceWindow,
    Page,
    PageStatus,
    Rotation,
    RotationMember,
    Schedule,
)
from paging.tasks import check_escalations, reconcile
from tests.factories import IncidentFactory, UserFactory, contact, policy_with_levels
from tests.receiver import Receiver, receiver
from triage import counters

T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
REFUSING = "json://127.0.0.1:9/hook"  # nothing listens on the discard port

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # The receivers and the refusing webhook listen on 127.0.0.1.
    pytest.mark.usefixtures("outbound_loopback"),
]


def messages(incident: Incident) -> list[str]:
    return list(incident.timeline.order_by("created_at", "pk").values_list("message", flat=True))


def row_html(client: Client, incident: Incident) -> str:
    html = client.get("/").content.decode()
    return html.split(f'data-incident="{incident.pk}"', 1)[1].split("</tr>", 1)[0]


def fail_every_attempt(incident: Incident) -> None:
    """Deliver each queued page until every attempt has failed (5 each)."""
    for _ in range(notify.MAX_ATTEMPTS * 3):
        queued = list(
            Page.objects.filter(incident=incident, status=PageStatus.QUEUED).values_list(
                "pk", flat=True
            )
        )
        if not queued:
            return
        for page_id in queued:
            notify.deliver(page_id)


@pytest.fixture
def inbox() -> Receiver:
    with receiver() as found:
        yield found


# --- plain reasons ------------------------------------------------------------


def test_a_destination_the_policy_refuses_is_not_retried_and_the_level_moves_on(
    web: Service, redis: Redis, inbox: Receiver
) -> None:
    ana, bob = UserFactory(username="ana"), UserFactory(username="bob")
    # A method saved before the outbound policy, pointing inside the network.
    ContactMethod.objects.create(user=ana, name="old hook", url="json://10.0.0.5/hook")
    contact(bob, url=inbox.url)
    web.escalation_policy = policy_with_levels((30, [ana]), (30, [bob]))
    web.save()
    incident = IncidentFactory(service=web)

    first = Page.objects.get(incident=incident, user=ana)
    assert notify.deliver(first.pk) == "failed"
    # Refused stays refused until staff allow the host: no four more tries
    # (30 s, 1, 2, 4 min) before level 2 hears of it.
    assert Page.objects.filter(incident=incident, user=ana).count() == 1
    incident.refresh_from_db()
    assert incident.escalation_level == 2
    timeline = messages(incident)
    assert "Could not reach ana: refused by triage's outbound policy" in timeline
    assert "Escalated to level 2 (nobody at level 1 could be reached)" in timeline


# --- 1. delivery truth --------------------------------------------------------


def test_each_person_paged_shows_how_their_page_went(
    web: Service, redis: Redis, alice_client: Client, inbox: Receiver
) -> None:
    ana, bob, cy = (UserFactory(username=n) for n in ("ana", "bob", "cy"))
    contact(ana, url=inbox.url)
    contact(cy, url=REFUSING)
    web.escalation_policy = policy_with_levels((5, [ana, bob, cy]))
    web.save()
    incident = IncidentFactory(service=web)

    row = row_html(alice_client, incident)
    assert "ana … queued" in row
    assert "bob ✗ no contact method" in row
    for page in Page.objects.filter(incident=incident, status=PageStatus.QUEUED):
        notify.deliver(page.pk)

    row = row_html(alice_client, incident)
    assert "ana ✓ json" in row
    assert "bob ✗ no contact method" in row
    assert "cy ⟳ retrying" in row
    assert "connection refused by 127.0.0.1" in row  # the tooltip: the plain reason
    failed = Page.objects.get(incident=incident, user=cy, attempt=1)
    assert failed.error == "connection refused by 127.0.0.1"  # never a log line

    timeline = messages(incident)
    assert "Paged ana, bob, cy (level 1)" in timeline
    assert "Could not reach bob: no contact method" in timeline
    assert "Paged ana (level 1) — sent via json" in timeline
    # cy's first attempt failed but four more are coming: no entry per retry.
    assert not [m for m in timeline if m.startswith("Could not reach cy")]

    detail = alice_client.get(f"/incidents/{incident.pk}").content.decode()
    assert "ana ✓ json" in detail
    assert "bob ✗ no contact method" in detail


def test_a_failing_method_is_reported_once_when_its_last_attempt_fails(
    web: Service, redis: Redis, alice_client: Client, inbox: Receiver
) -> None:
    ana, bob = UserFactory(username="ana"), UserFactory(username="bob")
    contact(ana, url=REFUSING)
    contact(bob, url=inbox.url)
    web.escalation_policy = policy_with_levels((5, [ana]), (5, [bob]))
    web.save()
    incident = IncidentFactory(service=web)
    fail_every_attempt(incident)  # also delivers level 2 once it is paged

    timeline = messages(incident)
    assert timeline.count("Could not reach ana: connection refused by 127.0.0.1") == 1
    assert Page.objects.filter(incident=incident, user=ana).count() == notify.MAX_ATTEMPTS


def test_the_acknowledged_row_keeps_who_was_paged_from_the_first_refresh(
    web: Service, redis: Redis, alice_client: Client, alice: User, inbox: Receiver
) -> None:
    ana = UserFactory(username="ana")
    contact(ana, url=inbox.url)
    web.escalation_policy = policy_with_levels((5, [ana]))
    web.save()
    incident = IncidentFactory(service=web)
    services.acknowledge_incident(incident, actor=alice)

    # The cause: the acknowledgement wrote an empty "paged" list to Redis,
    # which the dashboard trusts until reconciliation rewrites it.
    assert state.read_live([incident.pk])[incident.pk].paged == ["ana"]
    row = row_html(alice_client, incident)
    assert "by alice" in row
    assert "ana" in row.split('class="reach"', 1)[1]


# --- 2. a level that reaches nobody does not wait -------------------------------


def test_a_level_nobody_can_be_reached_on_escalates_at_once(
    web: Service, redis: Redis, alice_client: Client, inbox: Receiver
) -> None:
    bob, cy = UserFactory(username="bob"), UserFactory(username="cy")
    disabled = contact(bob, url=inbox.url)
    ContactMethod.objects.filter(pk=disabled.pk).update(enabled=False)
    contact(cy, url=inbox.url)
    web.escalation_policy = policy_with_levels((30, [bob]), (30, [cy]))
    web.save()
    incident = IncidentFactory(service=web)

    incident.refresh_from_db()
    assert incident.escalation_level == 2
    assert incident.nobody_reached_at is None
    timeline = messages(incident)
    assert "Could not reach bob: all contact methods are disabled" in timeline
    assert "Escalated to level 2 (nobody at level 1 could be reached)" in timeline
    assert timeline.count("Escalated to level 2 (nobody at level 1 could be reached)") == 1
    assert "Paged cy (level 2)" in timeline


def test_every_attempt_failing_escalates_at_once_exactly_once(
    web: Service, redis: Redis, inbox: Receiver
) -> None:
    ana, cy, bob = (UserFactory(username=n) for n in ("ana", "cy", "bob"))
    contact(ana, url=REFUSING)
    contact(cy, url=REFUSING)
    contact(bob, url=inbox.url)
    web.escalation_policy = policy_with_levels((30, [ana, cy]), (30, [bob]))
    web.save()
    incident = IncidentFactory(service=web)
    # Their last attempts are due; both fail.
    Page.objects.filter(incident=incident).update(attempt=notify.MAX_ATTEMPTS)
    for page in list(Page.objects.filter(incident=incident, level=1)):
        notify.deliver(page.pk)
    # A late duplicate of the last failure's follow-up changes nothing.
    last = Page.objects.filter(incident=incident, level=1).last()
    assert last is not None
    escalation.page_failed(last, now=last.created_at)

    incident.refresh_from_db()
    assert incident.escalation_level == 2
    assert incident.escalation_step == 2
    escalated = incident.timeline.filter(kind=EventKind.ESCALATED)
    assert [e.message for e in escalated] == [
        "Escalated to level 2 (nobody at level 1 could be reached)"
    ]


def test_the_last_level_reaching_nobody_flags_the_incident(
    web: Service, redis: Redis, alice_client: Client, alice: User, inbox: Receiver
) -> None:
    ana, bob = UserFactory(username="ana"), UserFactory(username="bob")
    contact(ana, url=REFUSING)
    web.escalation_policy = policy_with_levels((30, [ana]), (30, [bob]))
    web.save()
    before = counters.read_metric("nobody_reached").get("error", 0)
    contact(alice, url=inbox.url)
    older_policy = policy_with_levels((30, [alice]))
    other = Service.objects.create(name="other", slug="other", escalation_policy=older_policy)
    older = IncidentFactory(service=other, title="older, reached")
    incident = IncidentFactory(service=web, title="nobody knows")
    assert Incident.objects.get(pk=incident.pk).escalation_level == 1
    fail_every_attempt(incident)

    incident.refresh_from_db()
    assert incident.escalation_level == 2
    assert incident.nobody_reached_at is not None
    timeline = messages(incident)
    assert "Escalated to level 2 (nobody at level 1 could be reached)" in timeline
    assert "Could not reach bob: no contact method" in timeline
    assert (
        timeline.count("Nobody reached: level 2 is the last and nobody on it could be reached") == 1
    )
    assert counters.read_metric("nobody_reached")["error"] == before + 1
    exported = {m.name: m for m in metrics.collect()}
    sample = exported["triage_incidents_nobody_reached"].samples[0]
    assert sample.labels == {"severity": "error"}
    assert sample.value == before + 1

    html = alice_client.get("/").content.decode()
    assert "nobody reached" in row_html(alice_client, incident)
    # First within its severity, above an older incident.
    assert html.index(f'data-incident="{incident.pk}"') < html.index(f'data-incident="{older.pk}"')
    assert "last level — nobody else will be paged" in row_html(alice_client, incident)

    # Acknowledging clears the flag.
    services.acknowledge_incident(incident, actor=alice)
    assert Incident.objects.get(pk=incident.pk).nobody_reached_at is None


# --- 6. what happens next -----------------------------------------------------


def test_the_row_and_header_say_what_happens_next(
    web: Service, redis: Redis, alice_client: Client, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(T0, tick=False)
    ana, bob, cy = (UserFactory(username=n) for n in ("ana", "bob", "cy"))
    for person in (ana, bob, cy):
        contact(person)
    # Level 2 pages whoever is on call then: bob until 03:00, cy after.
    schedule = Schedule.objects.create(name="db", slug="db")
    rotation = Rotation.objects.create(
        schedule=schedule,
        name="r",
        start=T0 - timedelta(hours=1),
        shift_length=1,
        shift_unit="hours",
    )
    RotationMember.objects.create(rotation=rotation, user=bob, position=0)
    RotationMember.objects.create(rotation=rotation, user=cy, position=1)
    policy = policy_with_levels((4, [ana]), (5, []), repeat=1)
    policy.levels.get(position=1).schedules.add(schedule)
    web.escalation_policy = policy
    web.save()
    incident = IncidentFactory(service=web)

    # Level 2's deadline is 03:04: cy is on call then (the hour from 03:00).
    assert "next: level 2 — cy, " in row_html(alice_client, incident)
    assert "in 4 min</time>" in row_html(alice_client, incident)
    header = alice_client.get(f"/incidents/{incident.pk}").content.decode()
    assert "next: level 2 — cy, " in header

    time_machine.shift(timedelta(minutes=4, seconds=1))
    escalation.check()
    assert "next: level 1 again — ana, " in row_html(alice_client, incident)
    assert "; repeats 1 more time" in row_html(alice_client, incident)

    time_machine.shift(timedelta(minutes=5, seconds=1))
    escalation.check()
    time_machine.shift(timedelta(minutes=4, seconds=1))
    escalation.check()
    assert "last level — nobody else will be paged" in row_html(alice_client, incident)

    other = IncidentFactory(service=web, title="during maintenance")
    MaintenanceWindow.objects.create(
        service=web, start=T0, end=T0 + timedelta(hours=1, minutes=30), reason="upgrade"
    )
    assert "held by a maintenance window until 04:30 UTC" in row_html(alice_client, other)


def test_the_dashboard_keeps_a_constant_query_count_with_delivery_and_next_steps(
    redis: Redis, alice_client: Client, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(T0, tick=False)

    def paged_incidents(n: int, tag: str) -> None:
        for k in range(n):
            people = [UserFactory(username=f"{tag}{k}-{j}") for j in range(3)]
            contact(people[0], url=REFUSING)
            schedule = Schedule.objects.create(name=f"{tag}{k}", slug=f"{tag}{k}")
            rotation = Rotation.objects.create(schedule=schedule, name="r", start=T0)
            RotationMember.objects.create(rotation=rotation, user=people[2])
            policy = policy_with_levels((5, [people[0]]), (5, [people[1]]), (5, []))
            policy.levels.get(position=2).schedules.add(schedule)
            service = Service.objects.create(
                name=f"{tag} {k}", slug=f"{tag}-{k}", escalation_policy=policy
            )
            MaintenanceWindow.objects.create(
                service=service, start=T0 + timedelta(days=1), end=T0 + timedelta(days=2)
            )
            for page in Page.objects.filter(incident=IncidentFactory(service=service)):
                notify.deliver(page.pk)

    paged_incidents(2, "few")
    with CaptureQueriesContext(connection) as few:
        assert alice_client.get("/").content.decode().count("⟳ retrying") == 2
    paged_incidents(8, "many")
    with CaptureQueriesContext(connection) as many:
        html = alice_client.get("/").content.decode()
    assert html.count("⟳ retrying") == 10
    assert len(many) == len(few), [q["sql"] for q in many]


# --- 3. reachability before it matters ----------------------------------------


def test_a_delivered_test_or_page_verifies_the_method(
    web: Service, redis: Redis, inbox: Receiver
) -> None:
    ana = UserFactory(username="ana")
    method = contact(ana, url=inbox.url)
    refusing = contact(ana, url=REFUSING, name="webhook")
    assert notify.send_test(refusing.pk) == "connection refused by 127.0.0.1"
    refusing.refresh_from_db()
    assert refusing.reach_verified_at is None
    assert refusing.last_test_result == "connection refused by 127.0.0.1"

    web.escalation_policy = policy_with_levels((5, [ana]))
    web.save()
    incident = IncidentFactory(service=web)
    notify.deliver(Page.objects.get(incident=incident, contact_method=method).pk)
    method.refresh_from_db()
    assert method.reach_verified_at is not None


def test_oncall_and_admin_pages_warn_about_people_nobody_can_reach(
    web: Service, redis: Redis, alice_client: Client, root: User, inbox: Receiver
) -> None:
    ana, bob = UserFactory(username="ana"), UserFactory(username="bob")
    contact(ana, url=inbox.url)
    assert notify.send_test(ContactMethod.objects.get(user=ana).pk) == "delivered"
    schedule = Schedule.objects.create(name="db", slug="db")
    rotation = Rotation.objects.create(schedule=schedule, name="r", start=T0)
    RotationMember.objects.create(rotation=rotation, user=bob, position=0)
    RotationMember.objects.create(rotation=rotation, user=ana, position=1)
    policy = policy_with_levels((5, [ana]))
    policy.levels.get().schedules.add(schedule)

    html = alice_client.get("/oncall").content.decode()
    assert "<strong>bob</strong> is on call now or next: no contact method" in html
    assert "<strong>ana</strong> is on call now or next" not in html

    staff = Client()
    staff.force_login(root)
    for url in (
        f"/admin/paging/schedule/{schedule.pk}/change/",
        f"/admin/paging/escalationpolicy/{policy.pk}/change/",
    ):
        page = staff.get(url).content.decode()
        assert "Cannot be reached: bob, " in page, url
        assert ": no contact method." in page
        assert "Cannot be reached: ana" not in page

    listing = staff.get("/oncall/unreachable").content.decode()
    assert "<strong>bob</strong></td><td>no contact method</td><td>schedule db</td>" in listing
    assert "<strong>ana</strong>" not in listing
    assert alice_client.get("/oncall/unreachable").status_code == 403


def test_a_test_notification_updates_its_row_in_place(
    alice: User, alice_client: Client, redis: Redis
) -> None:
    method = contact(alice, url=REFUSING)
    htmx = {"HX-Request": "true"}
    sent = alice_client.post(f"/account/notifications/{method.pk}/test", headers=htmx)
    row = sent.content.decode()
    assert sent.status_code == 200
    assert "sending test…" in row
    assert f'hx-get="/account/notifications/{method.pk}/row" hx-trigger="every 1s"' in row
    assert "reload" not in row

    notify.send_test(method.pk)  # what the worker does
    row = alice_client.get(f"/account/notifications/{method.pk}/row", headers=htmx)
    html = row.content.decode()
    assert "connection refused by 127.0.0.1" in html
    assert "hx-trigger" not in html  # finished: polling stops
    assert alice_client.get("/account/notifications/999999/row").status_code == 404


# --- 7. quiet logs ------------------------------------------------------------


def test_an_escalation_pass_with_nothing_due_logs_nothing(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        check_escalations.apply()
        logging.getLogger("celery.beat").info(
            "Scheduler: Sending due task %s (%s)", "check-escalations", "paging.check_escalations"
        )
    assert [r for r in caplog.records if r.levelno >= logging.INFO] == []
    assert state.heartbeat() is not None  # the pass ran


def test_reconciliation_and_the_heartbeat_check_log_nothing_when_nothing_was_wrong(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        reconcile.apply()
        check_heartbeats.apply()
        for task in ("paging.reconcile", "integrations.check_heartbeats"):
            logging.getLogger("celery.beat").info("Scheduler: Sending due task %s (%s)", task, task)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO] == []


def test_reconciliation_says_when_it_repaired_something(
    paged: None, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    # A queued page whose task was lost (a flushed broker) is sent again.
    Page.objects.update(due_at=T0 - timedelta(minutes=5))
    with caplog.at_level(logging.INFO):
        reconcile.apply()
    [line] = [r for r in caplog.records if r.name == "paging.tasks"]
    assert line.getMessage() == "reconciliation"
    assert line.outcomes["pages_resent"] == 1


def test_an_escalation_pass_that_did_something_says_so(
    paged: None, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    incident = Incident.objects.get()
    Incident.objects.filter(pk=incident.pk).update(next_escalation_at=T0)
    state.set_deadline(incident.pk, T0)
    with caplog.at_level(logging.INFO):
        check_escalations.apply()
    assert [r.getMessage() for r in caplog.records if r.name == "paging.tasks"] == [
        "escalation pass"
    ]


@pytest.fixture
def paged(web: Service) -> None:
    ana = UserFactory(username="ana")
    contact(ana)
    web.escalation_policy = policy_with_levels((5, [ana]), (5, [ana]))
    web.save()
    IncidentFactory(service=web)


def test_why_someone_cannot_be_reached(redis: Redis, alice_client: Client) -> None:
    from paging.selectors import unreachable

    nobody, off, failing, fine, untested = (
        UserFactory(username=n) for n in ("nobody", "off", "failing", "fine", "untested")
    )
    contact(off, enabled=False)
    method = contact(failing, url=REFUSING)
    notify.send_test(method.pk)
    ContactMethod.objects.filter(pk=contact(fine).pk).update(reach_verified_at=T0)
    contact(untested)
    assert unreachable([nobody, off, failing, fine, untested]) == {
        nobody.pk: "no contact method",
        off.pk: "all contact methods are disabled",
        failing.pk: "no method verified yet (last test: connection refused by 127.0.0.1)",
        untested.pk: "no method verified yet: send a test notification",
    }
    page = alice_client.get("/account/notifications").content.decode()
    assert "Nothing has verified that triage can reach you: no contact method." in page


def test_a_test_that_never_finishes_stops_polling(
    alice: User, alice_client: Client, redis: Redis, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(T0, tick=False)
    method = contact(alice, url=REFUSING)
    alice_client.post(f"/account/notifications/{method.pk}/test")  # no worker runs
    time_machine.shift(timedelta(minutes=2))
    row = alice_client.get(f"/account/notifications/{method.pk}/row").content.decode()
    assert "the test did not finish (is a worker running?); try again" in row
    assert "hx-trigger" not in row


def test_an_acknowledged_incident_says_when_it_pages_again(
    web: Service, redis: Redis, alice_client: Client, alice: User, inbox: Receiver
) -> None:
    contact(alice, url=inbox.url)
    web.escalation_policy = policy_with_levels((5, [alice]))
    web.ack_timeout_minutes = 30
    web.save()
    incident = IncidentFactory(service=web)
    services.acknowledge_incident(incident, actor=alice)
    assert "pages level 1 again if not resolved, " in row_html(alice_client, incident)
    web.ack_timeout_minutes = None
    web.save()
    other = IncidentFactory(service=web)
    services.acknowledge_incident(other, actor=alice)
    assert '<td class="next">—</td>' in row_html(alice_client, other)
