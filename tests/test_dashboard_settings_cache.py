"""What the dashboard caches beside its list: the settings its rows and
filters show (who is on each escalation level, the services), cached under
the settings' version, and the counts, shared by every filter and page of
one version. A change to any of them shows at the next poll."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from redis import Redis
from time_machine import TimeMachineFixture

from incidents import services
from incidents.models import Incident, Service
from paging.models import EscalationLevel, MaintenanceWindow, Rotation, RotationMember, Schedule
from tests.factories import (
    IncidentFactory,
    ServiceFactory,
    UserFactory,
    contact,
    policy_with_levels,
)
from tests.test_dashboard_cache import T0, poll
from triage import readmodel

pytestmark = pytest.mark.django_db


def next_step(response: Any, incident: Incident) -> str:
    """The "Next escalation" cell of the incident's row."""
    html = response.content.decode()
    row = html.split(f'data-incident="{incident.pk}"', 1)[1].split("</tr>", 1)[0]
    return row.split('<td class="next">', 1)[1].split("</td>", 1)[0]


@pytest.fixture
def paged(
    web: Service,
    redis: Redis,
    time_machine: TimeMachineFixture,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> Incident:
    """An incident paged at level 1 (ana, reachable: level 2 waits for its deadline)."""
    time_machine.move_to(T0, tick=False)
    ana = UserFactory(username="ana")
    contact(ana)
    web.escalation_policy = policy_with_levels((5, [ana]), (5, [UserFactory(username="bob")]))
    web.save()
    with django_capture_on_commit_callbacks(execute=True):
        incident: Incident = IncidentFactory(service=web)
    return incident


def test_every_change_to_the_next_level_shows_at_the_next_poll(
    alice_client: Client, paged: Incident, web: Service
) -> None:
    """Each kind of paging setting a row shows: the level's people, a person's
    name, the levels themselves, the policy's repeats and a level's schedule."""
    first = poll(alice_client)
    assert next_step(first, paged).startswith("next: level 2 — bob, ")
    etag = first["ETag"]
    assert poll(alice_client, etag).status_code == 304
    policy = web.escalation_policy
    assert policy is not None
    second = EscalationLevel.objects.get(policy=policy, position=1)

    def shown() -> str:
        nonlocal etag
        response = poll(alice_client, etag)
        assert response.status_code == 200  # never the 304 of what it showed before
        etag = response["ETag"]
        return next_step(response, paged)

    carol = UserFactory(username="carol")
    second.users.set([carol])
    assert shown().startswith("next: level 2 — carol, ")
    carol.username = "carol.c"
    carol.save()
    assert shown().startswith("next: level 2 — carol.c, ")
    second.delete()
    assert shown() == "last level — nobody else will be paged"
    policy.repeat_count = 1
    policy.save()
    step = shown()
    assert step.startswith("next: level 1 again — ana, ")
    assert step.endswith("; repeats 1 more time")
    policy.repeat_count = 0
    policy.save()
    third = EscalationLevel.objects.create(policy=policy, position=1, delay_minutes=5)
    assert shown().startswith("next: level 2 — nobody, ")
    schedule = Schedule.objects.create(name="db on call", slug="db-on-call")
    rotation = Rotation.objects.create(schedule=schedule, name="weekly", start=T0)
    RotationMember.objects.create(rotation=rotation, user=UserFactory(username="erin"))
    third.schedules.add(schedule)
    assert shown().startswith("next: level 2 — erin, ")


def test_the_policys_repeats_show_at_the_next_poll(
    alice_client: Client, paged: Incident, web: Service
) -> None:
    EscalationLevel.objects.get(policy=web.escalation_policy, position=1).delete()
    assert next_step(poll(alice_client), paged) == "last level — nobody else will be paged"
    policy = web.escalation_policy
    assert policy is not None
    policy.repeat_count = 2
    policy.save()
    step = next_step(poll(alice_client), paged)
    assert step.startswith("next: level 1 again — ana, ")
    assert step.endswith("; repeats 2 more times")


def test_the_levels_are_read_once_until_a_paging_setting_changes(
    alice_client: Client, paged: Incident, web: Service
) -> None:
    def levels_read() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert alice_client.get("/").status_code == 200
        return sum('FROM "paging_escalationlevel"' in q["sql"] for q in queries)

    assert levels_read() == 1
    services.add_note(paged, actor=None, text="looking")  # a change to what is open
    assert levels_read() == 0
    EscalationLevel.objects.get(policy=web.escalation_policy, position=1).users.add(
        UserFactory(username="dave")
    )
    assert levels_read() == 1
    assert next_step(poll(alice_client), paged).startswith("next: level 2 — bob, dave, ")


def test_the_service_filter_shows_every_change_to_the_services(
    alice_client: Client, redis: Redis
) -> None:
    def options() -> str:
        html = alice_client.get("/").content.decode()
        return html.split('<select name="service">', 1)[1].split("</select>", 1)[0]

    db = ServiceFactory(name="Database", slug="db")
    assert '<option value="db">Database</option>' in options()
    IncidentFactory(service=db)  # a change to what is open: the services are not read again
    with CaptureQueriesContext(connection) as queries:
        assert '<option value="db">Database</option>' in options()
    assert not [q for q in queries if 'FROM "incidents_service" ORDER BY' in q["sql"]]
    db.name = "Primary database"
    db.save()
    assert '<option value="db">Primary database</option>' in options()
    ServiceFactory(name="Cache", slug="cache")
    assert '<option value="cache">Cache</option>' in options()
    Service.objects.filter(slug="cache").delete()
    assert "Cache" not in options()


def test_the_counts_are_read_once_per_version_and_follow_every_change(
    alice_client: Client, redis: Redis
) -> None:
    def counts(path: str) -> dict[str, int]:
        response = alice_client.get(path)
        return {severity.value: n for severity, n in response.context["counts"]}

    def counted(path: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            counts(path)
        # open_counts_by_severity's query (not the filtered list's own count)
        return sum('AS "n" FROM "incidents_incident"' in q["sql"] for q in queries)

    IncidentFactory(severity="info")
    assert counts("/?severity=info")["info"] == 1
    # Another filter, another page: the list is read, the counts are not.
    assert counted("/?severity=critical") == 0
    critical = IncidentFactory(severity="critical")
    assert counted("/?severity=info") == 1
    assert counts("/?severity=info")["critical"] == 1
    services.resolve_incident(critical, actor=None)
    assert counts("/?severity=critical")["critical"] == 0
    services.reopen_incident(critical, actor=None)
    assert counts("/?severity=critical")["critical"] == 1


def test_without_redis_settings_are_read_from_postgresql(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    request.getfixturevalue("redis_unreachable")  # Redis down from here on
    reads: list[int] = []

    def read() -> list[int]:
        reads.append(1)
        return [len(reads)]

    assert readmodel.settings_cached("test", read) == [1]
    assert readmodel.settings_cached("test", read) == [2]
    assert "settings read from PostgreSQL" in caplog.text
    readmodel.bump_settings()
    assert "the read model's version was not bumped" in caplog.text


def test_a_setting_read_as_empty_is_cached_too(redis: Redis, alice: User) -> None:
    reads: list[int] = []

    def read() -> list[int]:
        reads.append(1)
        return []

    assert readmodel.settings_cached("empty", read) == []
    assert readmodel.settings_cached("empty", read) == []
    assert len(reads) == 1
    alice.save()  # a person changed: read again
    assert readmodel.settings_cached("empty", read) == []
    assert len(reads) == 2


def test_every_change_to_a_maintenance_window_shows_at_the_next_poll(
    alice_client: Client, paged: Incident, web: Service, time_machine: TimeMachineFixture
) -> None:
    def windows_read() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert alice_client.get("/").status_code == 200
        return sum('FROM "paging_maintenancewindow"' in q["sql"] for q in queries)

    assert windows_read() == 1
    services.add_note(paged, actor=None, text="looking")  # what is open changed, no window
    assert windows_read() == 0
    window = MaintenanceWindow.objects.create(
        service=web, start=T0 - timedelta(minutes=1), end=T0 + timedelta(hours=1)
    )
    assert next_step(poll(alice_client), paged) == "held by a maintenance window until 04:00 UTC"
    window.end = T0 + timedelta(hours=2)
    window.save()
    assert next_step(poll(alice_client), paged) == "held by a maintenance window until 05:00 UTC"
    # The window ends with nothing written: the next request after its end
    # shows the row released (the cached list ends there, the windows are
    # filtered by each request's clock).
    time_machine.shift(timedelta(hours=2))
    assert next_step(poll(alice_client), paged).startswith("next: level 2 — bob, ")
    window.end = T0 + timedelta(hours=3)
    window.save()
    assert next_step(poll(alice_client), paged) == "held by a maintenance window until 06:00 UTC"
    window.delete()
    assert next_step(poll(alice_client), paged).startswith("next: level 2 — bob, ")
