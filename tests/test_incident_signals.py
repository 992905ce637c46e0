"""``incident_changed``: other apps hear about incident changes once they
committed, without ``incidents`` importing them."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from incidents import services
from incidents.models import Service
from incidents.signals import incident_changed
from tests.factories import IncidentFactory, policy_with_levels

pytestmark = pytest.mark.django_db


@pytest.fixture
def heard() -> Any:
    changes: list[tuple[int, str]] = []

    def listener(*, incident_id: int, change: str, **_: Any) -> None:
        changes.append((incident_id, change))

    incident_changed.connect(listener, dispatch_uid="test-listener")
    yield changes
    incident_changed.disconnect(dispatch_uid="test-listener")


def test_every_change_is_announced_after_commit(
    web: Service, alice: User, heard: list[tuple[int, str]], django_capture_on_commit_callbacks: Any
) -> None:
    web.escalation_policy = policy_with_levels((5, [alice]))
    web.save()
    with django_capture_on_commit_callbacks(execute=True):
        incident = IncidentFactory(service=web)
    with django_capture_on_commit_callbacks(execute=True):
        services.acknowledge_incident(incident, actor=alice)
    with django_capture_on_commit_callbacks(execute=True):
        services.escalate_incident(incident, actor=alice)
    with django_capture_on_commit_callbacks(execute=True):
        services.resolve_incident(incident, actor=alice)
    with django_capture_on_commit_callbacks(execute=True):
        services.reopen_incident(incident, actor=alice)
    assert [change for _, change in heard] == [
        "opened",
        "escalated",  # level 1 paged
        "acknowledged",
        "escalated",
        "resolved",
        "reopened",
        "escalated",  # level 1 paged again
    ]
    assert {incident_id for incident_id, _ in heard} == {incident.pk}


def test_a_change_that_rolls_back_is_not_announced(
    web: Service, alice: User, heard: list[tuple[int, str]], django_capture_on_commit_callbacks: Any
) -> None:
    incident = IncidentFactory(service=web)

    def acknowledge_then_fail() -> None:
        with transaction.atomic():
            services.acknowledge_incident(incident, actor=alice)
            raise RuntimeError("something after it failed")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        acknowledge_then_fail()
    assert heard == []


def test_a_failing_listener_is_logged_and_does_not_silence_the_others(
    web: Service,
    heard: list[tuple[int, str]],
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: Any,
) -> None:
    def broken(**_: Any) -> None:
        raise ValueError("listener bug")

    incident_changed.connect(broken, dispatch_uid="broken-listener")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            incident = IncidentFactory(service=web)
    finally:
        incident_changed.disconnect(dispatch_uid="broken-listener")
    assert heard == [(incident.pk, "opened")]
    assert "incident_changed receiver" in caplog.text
    assert "listener bug" in caplog.text
