"""`manage.py import_config pagerduty`: a PagerDuty account (users, layered
schedules and overrides, escalation policies, services) comes over through
PagerDuty's own REST client, against a local HTTPS stand-in for REST API v2
that pages with offset/limit/more and rate-limits once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from redis import Redis
from time_machine import TimeMachineFixture

from incidents.models import Service
from integrations.config_import import pagerduty as reader
from integrations.keys import authenticate_key
from integrations.models import Integration, Kind
from paging.models import EscalationPolicy, Rotation, Schedule
from paging.oncall import who_is_on_call
from tests.config_import_server import Api, api_server
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

TOKEN = "u+pagerdutytoken"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
KEY = re.compile(r"\b[0-9a-f]{32}\b")


def ref(kind: str, id_: str) -> dict[str, Any]:
    return {"id": id_, "type": f"{kind}_reference", "summary": id_}


def user(id_: str, email: str, name: str) -> dict[str, Any]:
    return {"id": id_, "type": "user", "name": name, "email": email, "time_zone": "UTC"}


def account() -> tuple[dict[str, list[dict[str, Any]]], dict[str, dict[str, Any]]]:
    """Lists and single objects in the shapes of PagerDuty's API reference."""
    schedule = {
        "id": "PSCHED1",
        "type": "schedule",
        "name": "Ops",
        "time_zone": "America/New_York",
        "description": "Primary on call",
        "schedule_layers": [
            {
                "id": "PLAYER1",
                "name": "Layer 1",
                "start": "2026-11-02T09:00:00-05:00",
                "end": None,
                "rotation_virtual_start": "2026-11-02T09:00:00-05:00",
                "rotation_turn_length_seconds": 604800,
                "users": [{"user": ref("user", "PU1")}, {"user": ref("user", "PU2")}],
                "restrictions": [],
            },
            {
                "id": "PLAYER2",
                "name": "Weekend",
                "start": "2026-11-01T18:00:00-05:00",
                "end": None,
                "rotation_virtual_start": "2026-11-01T18:00:00-05:00",
                "rotation_turn_length_seconds": 86400,
                "users": [{"user": ref("user", "PU2")}],
                "restrictions": [
                    {
                        "type": "weekly_restriction",
                        "start_time_of_day": "18:00:00",
                        "duration_seconds": 216000,
                        "start_day_of_week": 5,
                    }
                ],
            },
            {
                "id": "PLAYER3",
                "name": "Old layer",
                "start": "2025-01-01T00:00:00Z",
                "end": "2025-06-01T00:00:00Z",
                "rotation_virtual_start": "2025-01-01T00:00:00Z",
                "rotation_turn_length_seconds": 86400,
                "users": [{"user": ref("user", "PU3")}],
                "restrictions": [],
            },
        ],
    }
    lists = {
        "/users": [
            user("PU1", "alice@example.com", "Alice"),
            user("PU2", "bob@example.com", "Bob"),
            user("PU3", "carol@example.com", "Carol"),
        ],
        "/schedules": [{k: v for k, v in schedule.items() if k != "schedule_layers"}],
        "/schedules/PSCHED1/overrides": [
            {
                "id": "POVR1",
                "start": "2026-11-25T00:00:00-05:00",
                "end": "2026-11-26T00:00:00-05:00",
                "user": ref("user", "PU1"),
            }
        ],
        "/escalation_policies": [
            {
                "id": "PESC1",
                "type": "escalation_policy",
                "name": "Ops escalation",
                "num_loops": 2,
                "escalation_rules": [
                    {
                        "id": "PR1",
                        "escalation_delay_in_minutes": 10,
                        "targets": [ref("schedule", "PSCHED1")],
                    },
                    {
                        "id": "PR2",
                        "escalation_delay_in_minutes": 20,
                        "targets": [ref("user", "PU1"), ref("user", "PU3")],
                    },
                ],
            }
        ],
        "/services": [
            {
                "id": "PSVC1",
                "type": "service",
                "name": "Checkout",
                "description": "The shop's checkout",
                "status": "active",
                "escalation_policy": ref("escalation_policy", "PESC1"),
                "acknowledgement_timeout": 1800,
                "auto_resolve_timeout": 14400,
                "incident_urgency_rule": {
                    "type": "use_support_hours",
                    "during_support_hours": {"type": "constant", "urgency": "high"},
                    "outside_support_hours": {"type": "constant", "urgency": "low"},
                },
                "integrations": [
                    {
                        "id": "PINT1",
                        "type": "events_api_v2_inbound_integration",
                        "name": "Prometheus",
                        "integration_key": "0123456789abcdef0123456789abcdef",
                    },
                    {
                        "id": "PINT2",
                        "type": "generic_email_inbound_integration",
                        "name": "Email",
                        "integration_email": "checkout@acme.pagerduty.com",
                    },
                ],
            },
            {
                "id": "PSVC2",
                "type": "service",
                "name": "Search",
                "description": "",
                "status": "active",
                "escalation_policy": ref("escalation_policy", "PESC1"),
                "acknowledgement_timeout": None,
                "auto_resolve_timeout": None,
                "incident_urgency_rule": {"type": "constant", "urgency": "high"},
                "integrations": [
                    {
                        "id": "PINT3",
                        "type": "generic_events_api_inbound_integration",
                        "name": "Nagios",
                    }
                ],
            },
        ],
    }
    return lists, {"/schedules/PSCHED1": {"schedule": schedule}}


@pytest.fixture
def people(db: None) -> dict[str, User]:
    return {
        name: UserFactory(username=name, email=f"{name}@example.com") for name in ("alice", "bob")
    }


@pytest.fixture
def pd(
    time_machine: TimeMachineFixture,
    people: dict[str, User],
    redis: Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Api]:
    time_machine.move_to(NOW, tick=False)
    # The client's own wait after a 429 is 3 s and doubling; a short first
    # wait keeps the test quick, and the client still does the retrying.
    monkeypatch.setattr(reader, "FIRST_RETRY_SECONDS", 0.05)
    with api_server("pagerduty", TOKEN, tls_dir=tmp_path) as api:
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
        api.lists, api.objects = account()
        yield api


def run(api: Api, *extra: str, token: str = TOKEN) -> str:
    out = StringIO()
    call_command(
        "import_config", "pagerduty", "--token", token, "--api-url", api.url, *extra, stdout=out
    )
    return out.getvalue()


def test_a_pagerduty_account_comes_over_through_its_rest_client(
    pd: Api, people: dict[str, User]
) -> None:
    pd.throttle_once.add("/users")

    out = run(pd)

    alice, bob = people["alice"], people["bob"]
    # Rate-limited once, then two pages (offset 0 and 2) of PagerDuty's paging.
    users = pd.seen("/users")
    assert [r["query"].get("offset") for r in users] == [["0"], ["0"], ["2"]]
    assert all(r["headers"]["Authorization"] == f"Token token={TOKEN}" for r in pd.requests)

    ops = Schedule.objects.get(name="Ops")
    assert ops.time_zone == "America/New_York"
    assert sorted(ops.rotations.values_list("name", "shift_unit", "shift_length")) == [
        ("Layer 1", "weeks", 1),
        ("Weekend", "days", 1),
    ]
    layer = Rotation.objects.get(name="Layer 1")
    assert layer.start == datetime(2026, 11, 2, 14, 0, tzinfo=UTC)
    assert [m.user for m in layer.members.all()] == [alice, bob]
    # Tuesday 24 Nov: week 4 of Layer 1 is bob's (the Weekend layer is bob too).
    assert who_is_on_call(ops, at=datetime(2026, 11, 24, 15, 0, tzinfo=UTC)) == [bob]
    # Alice's override on the 25th wins.
    assert who_is_on_call(ops, at=datetime(2026, 11, 25, 15, 0, tzinfo=UTC)) == [alice]

    policy = EscalationPolicy.objects.get(name="Ops escalation")
    assert policy.repeat_count == 2
    assert [
        (level.delay_minutes, list(level.users.all()), list(level.schedules.all()))
        for level in policy.levels.all()
    ] == [(10, [], [ops]), (20, [alice], [])]

    checkout = Service.objects.get(name="Checkout")
    assert checkout.escalation_policy == policy
    assert checkout.ack_timeout_minutes == 30
    assert checkout.description == "The shop's checkout"
    assert {(i.service.name, i.name, i.kind) for i in Integration.objects.all()} == {
        ("Checkout", "Prometheus", Kind.EVENTS_V2),
        ("Search", "Nagios", Kind.EVENTS_V2),
    }

    for expected in (
        "user carol@example.com: no active triage user with this email; left out of "
        "level 2 of policy 'Ops escalation'",
        "service 'Checkout': urgency rules: triage has no low urgency",
        "service 'Checkout': auto-resolve: triage does not resolve incidents on a timer",
        "integration 'Email': email integrations are not imported",
        "integration 'Nagios': an Events API v1 integration",
        "layer 'Weekend' of schedule 'Ops': restrictions",
        "schedule 'Ops': layers: PagerDuty pages the highest layer",
    ):
        assert expected in out
    assert "Old layer" not in out  # ended: nothing to bring, nothing to say

    keys = KEY.findall(out[out.index("New integration keys") :])
    assert {authenticate_key(key).name for key in keys} == {"Prometheus", "Nagios"}  # type: ignore[union-attr]
    assert "routing key:" in out
    assert "/integrations/v2/enqueue" in out


def test_a_second_run_updates_instead_of_duplicating(pd: Api) -> None:
    run(pd)
    pd.objects["/schedules/PSCHED1"]["schedule"]["name"] = "Operations"

    second = run(pd)

    assert list(Schedule.objects.values_list("name", flat=True)) == ["Operations"]
    assert Rotation.objects.count() == 2
    assert Service.objects.count() == 2
    assert Integration.objects.count() == 2
    assert not KEY.search(second)


def test_a_dry_run_writes_nothing(pd: Api) -> None:
    out = run(pd, "--dry-run")

    assert not Schedule.objects.exists()
    assert not Service.objects.exists()
    assert not Integration.objects.exists()
    assert "create  service 'Checkout'" in out
    assert not KEY.search(out)


def test_a_refused_key_imports_nothing(pd: Api) -> None:
    with pytest.raises(CommandError, match="PagerDuty refused the token"):
        run(pd, token="wrong")

    assert not Schedule.objects.exists()


def test_the_api_url_must_be_https(db: None) -> None:
    with pytest.raises(CommandError, match="must use scheme https"):
        call_command(
            "import_config",
            "pagerduty",
            "--token",
            TOKEN,
            "--api-url",
            "http://127.0.0.1:9",
            stdout=StringIO(),
        )


def test_layers_and_targets_it_cannot_map_are_listed(pd: Api) -> None:
    layers = pd.objects["/schedules/PSCHED1"]["schedule"]["schedule_layers"]
    layers.append(
        {**layers[0], "id": "PL90", "name": "Ninety", "rotation_turn_length_seconds": 5400}
    )
    layers.append({**layers[0], "id": "PLNONE", "name": "Nobody", "users": []})
    layers.append({**layers[0], "id": "PLEND", "name": "Ending", "end": "2027-01-01T00:00:00Z"})
    rules = pd.lists["/escalation_policies"][0]["escalation_rules"]
    rules.append({"id": "PR3", "targets": [{"id": "PT1", "type": "team_reference"}]})
    rules.append({"id": "PR4", "escalation_delay_in_minutes": 5, "targets": [ref("user", "PU2")]})

    out = run(pd)

    assert "layer 'Ninety' of schedule 'Ops': turns of 5400 s" in out
    assert "layer 'Nobody' of schedule 'Ops': it has no start, turn length or users" in out
    assert "layer 'Ending' of schedule 'Ops': end: it ends 2027-01-01 00:00 UTC" in out
    assert "target PT1: team_reference targets are not imported" in out
    assert "level 3 of policy 'Ops escalation': it would page nobody in triage" in out
    assert Rotation.objects.filter(name="Ending").exists()
    # The level left out (no delay given: PagerDuty's 30 minutes) still
    # passes before the next one.
    policy = EscalationPolicy.objects.get(name="Ops escalation")
    assert [level.delay_minutes for level in policy.levels.all()] == [10, 50, 5]


def test_a_server_error_stops_the_import_and_writes_nothing(pd: Api) -> None:
    pd.raw["/services"] = (500, b'{"error": {"message": "Internal error"}}')

    with pytest.raises(CommandError, match="PagerDuty answered HTTP 500"):
        run(pd)

    assert not Schedule.objects.exists()
    assert not EscalationPolicy.objects.exists()
