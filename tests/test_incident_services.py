from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone
from time_machine import TimeMachineFixture

from incidents import services
from incidents.errors import DuplicateOpenIncident, IdempotencyConflict
from incidents.models import EventKind, Incident, Service, Status
from tests.factories import IncidentFactory, contact, policy_with_levels
from triage.errors import DomainError

pytestmark = pytest.mark.django_db


def kinds(incident: Incident) -> list[str]:
    return list(incident.timeline.order_by("created_at", "pk").values_list("kind", flat=True))


def test_opening_an_incident_records_who_opened_it_on_the_timeline(
    web: Service, alice: User
) -> None:
    opened = services.open_incident(
        service=web, title="Checkout returns 502", severity="critical", actor=alice, source="ui"
    )
    incident = opened.incident
    assert opened.created
    assert incident.status == Status.TRIGGERED
    assert incident.opened_by == alice
    # The web service has no escalation policy: "nobody paged" is recorded
    # with the opening, in the same transaction.
    assert kinds(incident) == [EventKind.OPENED, EventKind.PAGED]
    assert "alice" in incident.timeline.get(kind=EventKind.OPENED).message
    assert "has no escalation policy" in incident.timeline.get(kind=EventKind.PAGED).message


def test_a_repeat_with_the_same_dedup_key_joins_the_open_incident(web: Service) -> None:
    first = services.open_incident(service=web, title="disk full", severity="error", dedup_key="k")
    again = services.open_incident(service=web, title="disk full", severity="error", dedup_key="k")
    assert again.incident.pk == first.incident.pk
    assert again.deduplicated
    assert not again.created
    assert kinds(first.incident) == [EventKind.OPENED, EventKind.PAGED, EventKind.ALERT]


def test_the_same_dedup_key_after_resolve_opens_a_new_incident(web: Service) -> None:
    first = services.open_incident(service=web, title="disk full", severity="error", dedup_key="k")
    services.resolve_incident(first.incident, actor=None)
    second = services.open_incident(service=web, title="disk full", severity="error", dedup_key="k")
    assert second.created
    assert second.incident.pk != first.incident.pk


def test_replaying_an_idempotency_key_returns_the_same_incident(web: Service) -> None:
    first = services.open_incident(service=web, title="a", severity="info", idempotency_key="x1")
    replay = services.open_incident(service=web, title="a", severity="info", idempotency_key="x1")
    assert replay.incident.pk == first.incident.pk
    assert not replay.created
    assert Incident.objects.count() == 1
    assert kinds(first.incident) == [EventKind.OPENED, EventKind.PAGED]


def test_reusing_an_idempotency_key_for_another_request_is_refused(web: Service) -> None:
    services.open_incident(service=web, title="a", severity="info", idempotency_key="x1")
    with pytest.raises(IdempotencyConflict, match="different request"):
        services.open_incident(service=web, title="b", severity="info", idempotency_key="x1")
    assert Incident.objects.count() == 1


def test_acknowledge_then_resolve_records_who_and_when(
    alice: User, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(datetime(2026, 11, 23, 3, 0, tzinfo=UTC), tick=False)
    incident = IncidentFactory()
    time_machine.shift(timedelta(minutes=3))
    acked = services.acknowledge_incident(incident, actor=alice)
    assert acked.status == Status.ACKNOWLEDGED
    assert acked.acknowledged_by == alice
    assert acked.acknowledged_at == incident.opened_at + timedelta(minutes=3)
    time_machine.shift(timedelta(minutes=20))
    resolved = services.resolve_incident(acked, actor=alice)
    assert resolved.status == Status.RESOLVED
    assert resolved.resolved_by == alice
    assert kinds(resolved) == [
        EventKind.OPENED,
        EventKind.PAGED,
        EventKind.ACKNOWLEDGED,
        EventKind.RESOLVED,
    ]


@pytest.mark.parametrize(
    ("steps", "refused"),
    [
        (["acknowledge"], "acknowledge"),
        (["resolve"], "resolve"),
        (["resolve"], "acknowledge"),
        (["resolve"], "escalate"),
        ([], "escalate"),  # the service has no escalation policy
        ([], "reopen"),
    ],
)
def test_invalid_transitions_are_refused_and_change_nothing(
    alice: User, steps: list[str], refused: str
) -> None:
    incident = IncidentFactory()
    for step in steps:
        getattr(services, f"{step}_incident")(incident, actor=alice)
    before = Incident.objects.get(pk=incident.pk)
    events = kinds(incident)
    with pytest.raises(DomainError):
        getattr(services, f"{refused}_incident")(incident, actor=alice)
    after = Incident.objects.get(pk=incident.pk)
    assert (after.status, after.updated_at) == (before.status, before.updated_at)
    assert kinds(incident) == events


def test_reopen_starts_over_as_triggered(alice: User) -> None:
    incident = IncidentFactory()
    services.acknowledge_incident(incident, actor=alice)
    services.resolve_incident(incident, actor=alice)
    reopened = services.reopen_incident(incident, actor=alice)
    assert reopened.status == Status.TRIGGERED
    assert reopened.acknowledged_at is None
    assert reopened.resolved_at is None
    assert kinds(reopened)[-1] == EventKind.REOPENED


def test_reopen_is_refused_when_another_incident_holds_the_dedup_key(web: Service) -> None:
    old = services.open_incident(service=web, title="a", severity="info", dedup_key="k").incident
    services.resolve_incident(old, actor=None)
    services.open_incident(service=web, title="a", severity="info", dedup_key="k")
    with pytest.raises(DuplicateOpenIncident, match="dedup key 'k'"):
        services.reopen_incident(old, actor=None)
    assert Incident.objects.get(pk=old.pk).status == Status.RESOLVED


def test_escalating_an_acknowledged_incident_triggers_it_at_the_next_level(
    alice: User, web: Service
) -> None:
    contact(alice)  # reachable: a level nobody can be reached on is skipped at once
    web.escalation_policy = policy_with_levels((5, [alice]), (5, [alice]))
    web.save()
    incident = IncidentFactory(service=web)
    # Paging starts after commit; here the test transaction never commits.
    assert incident.escalation_level == 0
    incident = services.acknowledge_incident(incident, actor=alice)
    escalated = services.escalate_incident(incident, actor=alice)
    assert escalated.status == Status.TRIGGERED
    assert escalated.escalation_level == 1
    assert escalated.acknowledged_by is None
    event = escalated.timeline.get(kind=EventKind.ESCALATED)
    assert event.data["reason"] == "manual"
    assert event.data["level"] == 1


def test_notes_are_allowed_on_resolved_incidents(alice: User) -> None:
    incident = services.resolve_incident(IncidentFactory(), actor=alice)
    note = services.add_note(incident, actor=alice, text="Root cause: expired cert")
    assert note.kind == EventKind.NOTE
    assert note.actor == alice
    assert kinds(incident)[-1] == EventKind.NOTE


def test_the_database_refuses_a_second_open_incident_for_a_dedup_key(web: Service) -> None:
    now = timezone.now()
    Incident.objects.create(service=web, title="a", severity="info", dedup_key="k", opened_at=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        Incident.objects.create(
            service=web, title="b", severity="info", dedup_key="k", opened_at=now
        )


@pytest.mark.parametrize(
    "change",
    [{"status": "sleeping"}, {"severity": "fatal"}, {"status": "resolved"}],
)
def test_the_database_refuses_invalid_status_and_severity(change: dict[str, str]) -> None:
    incident = IncidentFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Incident.objects.filter(pk=incident.pk).update(**change)


def test_acting_from_outside_triage_says_where_on_the_timeline(alice: User, web: Service) -> None:
    contact(alice)  # reachable: a level nobody can be reached on is skipped at once
    web.escalation_policy = policy_with_levels((5, [alice]), (5, [alice]))
    web.save()
    incident = services.acknowledge_incident(
        IncidentFactory(service=web), actor=alice, via="a notification"
    )
    incident = services.escalate_incident(incident, actor=alice, via="Slack")
    incident = services.resolve_incident(incident, actor=alice, via="Mattermost")
    messages = dict(incident.timeline.values_list("kind", "message"))
    assert messages[EventKind.ACKNOWLEDGED] == "by alice from a notification"
    assert messages[EventKind.ESCALATED].endswith("by alice from Slack")
    assert messages[EventKind.RESOLVED] == "by alice from Mattermost"


def test_only_an_acknowledged_incident_can_be_retriggered(alice: User) -> None:
    incident = IncidentFactory()
    with pytest.raises(DomainError, match="only an acknowledged incident"):
        services.retrigger_incident(incident)
    services.resolve_incident(incident, actor=alice)
    events = kinds(incident)
    with pytest.raises(DomainError, match="only an acknowledged incident"):
        services.retrigger_incident(incident)
    assert Incident.objects.get(pk=incident.pk).status == Status.RESOLVED
    assert kinds(incident) == events
    assert EventKind.RETRIGGERED not in events


def test_a_retriggered_incident_pages_its_first_level_again(
    alice: User,
    web: Service,
    django_capture_on_commit_callbacks: Any,
    time_machine: TimeMachineFixture,
) -> None:
    contact(alice)
    web.escalation_policy = policy_with_levels((5, [alice]), (5, [alice]))
    web.ack_timeout_minutes = 30
    web.save()
    opened_at = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    time_machine.move_to(opened_at, tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        incident = IncidentFactory(service=web)
    services.escalate_incident(incident, actor=alice)
    acknowledged = services.acknowledge_incident(incident, actor=alice)
    assert acknowledged.escalation_level == 2
    assert acknowledged.next_escalation_at == opened_at + timedelta(minutes=30)

    time_machine.shift(timedelta(minutes=30, seconds=2))
    retriggered = services.retrigger_incident(incident)
    assert retriggered.status == Status.TRIGGERED
    assert (retriggered.acknowledged_at, retriggered.acknowledged_by) == (None, None)
    assert (retriggered.escalation_level, retriggered.escalation_cycle) == (1, 0)
    assert retriggered.next_escalation_at == timezone.now() + timedelta(minutes=5)
    assert kinds(retriggered)[-3:] == [EventKind.RETRIGGERED, EventKind.ESCALATED, EventKind.PAGED]
    event = retriggered.timeline.filter(kind=EventKind.ESCALATED).latest("pk")
    assert event.data["reason"] == "ack_timeout"
    assert event.data["lateness_seconds"] == 2.0
