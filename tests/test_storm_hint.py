"""A service this process saw storm lately: its next new alerts try the
storm's lock-free join first (two statements, not the locked path's seven),
and the hint never homes an alert wrongly once the storm is over."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from time_machine import TimeMachineFixture

from incidents import storms
from incidents.models import Incident, Service, StormAlert
from integrations.keys import NewKey
from tests import test_storms
from tests.test_storms import fire, storm_of

pytestmark = pytest.mark.django_db
events = test_storms.events  # a key to web, whose threshold is three


@pytest.fixture(autouse=True)
def _no_hints() -> Iterator[None]:
    storms._STORMED_UNTIL.clear()
    yield
    storms._STORMED_UNTIL.clear()


def service_locks(client: Client, events: NewKey, key: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        fire(client, events, key)
    return sum(
        "incidents_service" in query["sql"] and "FOR NO KEY UPDATE" in query["sql"]
        for query in captured
    )


def test_a_storming_services_new_alerts_join_without_the_services_lock(
    client: Client, web: Service, events: NewKey
) -> None:
    fire(client, events, "a", "b", "c")  # the threshold: three of their own
    assert not storms.stormed_lately(web)
    assert service_locks(client, events, "d") == 1  # opens the storm, under the lock
    assert storms.stormed_lately(web)
    assert service_locks(client, events, "e") == 0
    assert service_locks(client, events, "f") == 0
    assert sorted(storm_of(web).storm_alerts.values_list("dedup_key", flat=True)) == [
        "d",
        "e",
        "f",
    ]


def test_once_the_storm_is_quiet_a_new_alert_opens_its_own_incident_despite_the_hint(
    client: Client, web: Service, events: NewKey, time_machine: TimeMachineFixture
) -> None:
    web.storm_quiet_seconds = 60
    web.storm_window_seconds = 30
    web.save()
    time_machine.move_to(timezone.now(), tick=False)
    fire(client, events, "a", "b", "c", "d")
    assert storms.stormed_lately(web)  # the process's clock has not moved
    time_machine.shift(timedelta(seconds=61))
    assert service_locks(client, events, "e") == 1  # the lock-free join declined
    assert Incident.objects.get(dedup_key="e").is_storm is False
    assert list(StormAlert.objects.values_list("dedup_key", flat=True)) == ["d"]
