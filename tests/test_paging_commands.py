from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from redis import Redis
from time_machine import TimeMachineFixture

from incidents.models import Service
from paging import state
from paging.models import Page
from paging.tasks import ping_heartbeat
from tests.factories import IncidentFactory, UserFactory, contact, policy_with_levels
from tests.receiver import receiver

pytestmark = pytest.mark.django_db(transaction=True)
T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


@pytest.fixture
def paged(web: Service) -> Service:
    ana = UserFactory(username="ana")
    contact(ana)
    web.escalation_policy = policy_with_levels((5, [ana]), (5, [ana]))
    web.save()
    return web


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_escalate_runs_one_pass_and_dry_run_changes_nothing(
    paged: Service, redis: Redis, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(T0, tick=False)
    incident = IncidentFactory(service=paged, title="disk full")
    time_machine.shift(timedelta(minutes=6))
    assert f"would escalate #{incident.pk} disk full (level 1" in run("escalate", "--dry-run")
    assert Page.objects.count() == 1
    assert "escalated: 1" in run("escalate")
    assert Page.objects.count() == 2


def test_escalate_one_incident_now(paged: Service, redis: Redis) -> None:
    incident = IncidentFactory(service=paged)
    assert "would escalate" in run("escalate", "--incident", str(incident.pk), "--dry-run")
    assert "is now at level 2" in run("escalate", "--incident", str(incident.pk))
    with pytest.raises(CommandError, match="No incident #999999"):
        run("escalate", "--incident", "999999")
    with pytest.raises(CommandError, match="no escalation policy"):
        run("escalate", "--incident", str(IncidentFactory().pk))


def test_rebuild_paging_state_restores_a_flushed_redis(paged: Service, redis: Redis) -> None:
    incident = IncidentFactory(service=paged)
    redis.flushdb()  # triage's database; parallel test workers use others of the same server
    assert "Indexed 1 escalation deadline(s)" in run("rebuild_paging_state")
    assert redis.zscore(state.DEADLINES, incident.pk) is not None
    assert state.read_live([incident.pk])[incident.pk].paged == ["ana"]


def test_readyz_reports_the_escalation_heartbeat(client: Client, redis: Redis) -> None:
    assert client.get("/readyz").json()["escalation"]["ok"] is False
    state.record_heartbeat(datetime.now(UTC).timestamp())
    detail = client.get("/readyz").json()["escalation"]
    assert detail["ok"] is True
    assert detail["heartbeat_age_seconds"] < 5


@pytest.mark.parametrize(
    "url",
    [
        "/admin/paging/contactmethod/",
        "/admin/paging/schedule/",
        "/admin/paging/schedule/add/",
        "/admin/paging/rotation/",
        "/admin/paging/escalationpolicy/",
        "/admin/paging/escalationpolicy/add/",
        "/admin/paging/maintenancewindow/",
        "/admin/paging/page/",
    ],
)
def test_paging_admin_pages_load(root: User, url: str, paged: Service, redis: Redis) -> None:
    IncidentFactory(service=paged)
    client = Client()
    client.force_login(root)
    assert client.get(url).status_code == 200


def test_healthy_passes_ping_the_external_heartbeat_at_most_once_a_minute(
    settings: Any, redis: Redis, outbound_loopback: object
) -> None:
    with receiver() as inbox:
        settings.ESCALATION_HEARTBEAT_URL = inbox.url.replace("json://", "http://") + "?ok"
        assert ping_heartbeat() == 200
        assert inbox.messages == [{"method": "GET", "path": "/hook?ok"}]
    assert state.once_per("heartbeat-ping", 60)
    assert not state.once_per("heartbeat-ping", 60)
    settings.ESCALATION_HEARTBEAT_URL = "ftp://example.com/"
    assert ping_heartbeat() == 0
