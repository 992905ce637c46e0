"""Apps take part in incident changes through ``incidents.hooks``: inside the
service's transaction, so a failing hook undoes the change."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from incidents import hooks, services
from incidents.models import EventKind, Incident, Service, Status
from incidents.selectors import DashboardRow
from paging.hooks import PagingLifecycle
from paging.models import Page
from tests.factories import IncidentFactory, contact, policy_with_levels

pytestmark = pytest.mark.django_db


class Refuses(hooks.Lifecycle):
    def acknowledged(self, incident: Incident, *, now: datetime) -> None:
        raise RuntimeError("the hook failed")


def test_a_failing_hook_leaves_the_incident_as_it_was(
    alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    incident = IncidentFactory()
    monkeypatch.setattr(hooks, "_lifecycles", [*hooks._lifecycles, Refuses()])
    with pytest.raises(RuntimeError, match="the hook failed"):
        services.acknowledge_incident(incident, actor=alice)
    incident.refresh_from_db()
    assert incident.status == Status.TRIGGERED
    assert not incident.timeline.filter(kind=EventKind.ACKNOWLEDGED).exists()
    # A hook that overrides one method leaves the other changes alone.
    services.resolve_incident(incident, actor=alice)
    assert Incident.objects.get(pk=incident.pk).status == Status.RESOLVED


def test_registering_paging_again_does_not_page_twice(
    alice: User, web: Service, django_capture_on_commit_callbacks: Any
) -> None:
    contact(alice)
    web.escalation_policy = policy_with_levels((5, [alice]))
    web.save()
    hooks.register(PagingLifecycle())  # as a second ready() would
    with django_capture_on_commit_callbacks(execute=True):
        incident = IncidentFactory(service=web)
    assert Page.objects.filter(incident=incident).count() == 1


class Counts(hooks.Pages):
    seen: list[int]

    def __init__(self) -> None:
        self.seen = []

    def dashboard_rows(
        self, rows: Sequence[DashboardRow], *, now: datetime, known: bool = True
    ) -> datetime | None:
        self.seen.extend(row.pk for row in rows)
        return None


def test_an_app_can_add_to_the_dashboard_and_nothing_to_the_incident_page(
    alice_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    incident = IncidentFactory()
    counts = Counts()
    monkeypatch.setattr(hooks, "_pages", [*hooks._pages, counts])
    assert alice_client.get("/").status_code == 200
    assert counts.seen == [incident.pk]
    assert alice_client.get(incident.get_absolute_url()).status_code == 200
