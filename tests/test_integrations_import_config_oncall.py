"""`manage.py import_config oncall`: a Grafana OnCall setup (users, web,
calendar and iCal schedules, escalation chains, integrations) comes over in
one command, against a local stand-in for OnCall's public API v1 that pages
its answers and throttles once."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from redis import Redis
from time_machine import TimeMachineFixture

from incidents.models import Service
from integrations.config_import.http import policy_allowing
from integrations.config_import.oncall import GRAFANA_KIND
from integrations.config_import.senders import sender_lines
from integrations.keys import authenticate_key, create_integration
from integrations.models import ImportSource, Integration, Kind
from paging.models import EscalationLevel, EscalationPolicy, Override, Rotation, Schedule
from paging.oncall import who_is_on_call
from tests.config_import_server import Api, api_server
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

TOKEN = "oncall-api-token"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday
KEY = re.compile(r"\b[0-9a-f]{32}\b")


def oncall_config() -> dict[str, list[dict[str, Any]]]:
    """An OnCall organisation in the shapes of OnCall's API reference."""
    user = {"grafana_id": 1, "slack": [], "role": "user", "timezone": "UTC", "teams": []}
    rolling = {
        "team_id": None,
        "time_zone": None,
        "interval": 1,
        "until": None,
        "by_month": None,
        "by_monthday": None,
        "start_rotation_from_user_index": 0,
    }
    return {
        "users": [
            {**user, "id": "U1", "email": "alice@example.com", "username": "alice"},
            {**user, "id": "U2", "email": "Bob@Example.com", "username": "bob"},
            {**user, "id": "U3", "email": "carol@example.com", "username": "carol"},
            {**user, "id": "U4", "email": "dave@example.com", "username": "dave"},
        ],
        "schedules": [
            {
                "id": "SWEB",
                "name": "Primary",
                "type": "web",
                "team_id": None,
                "time_zone": "Europe/Berlin",
                "on_call_now": ["U2"],
                "shifts": [],
                "slack": {"channel_id": None, "user_group_id": None},
            },
            {
                "id": "SCAL",
                "name": "Database",
                "type": "calendar",
                "team_id": None,
                "time_zone": "UTC",
                "on_call_now": [],
                "shifts": ["OREC"],
                "ical_url_overrides": None,
                "slack": {"channel_id": None, "user_group_id": None},
            },
            {
                "id": "SICAL",
                "name": "Legacy iCal",
                "type": "ical",
                "team_id": None,
                "ical_url_primary": "https://calendar.example.com/oncall.ics",
                "ical_url_overrides": None,
                "on_call_now": [],
                "slack": {"channel_id": None, "user_group_id": None},
            },
        ],
        "on_call_shifts": [
            {
                **rolling,
                "id": "OWEEK",
                "schedule": "SWEB",
                "name": "Weekly",
                "type": "rolling_users",
                "level": 0,
                "start": "2026-11-02T08:00:00",
                "rotation_start": "2026-11-02T08:00:00",
                "duration": 604800,
                "frequency": "weekly",
                "week_start": "MO",
                "by_day": None,
                "rolling_users": [["U1"], ["U3"], ["U2"]],
            },
            {
                **rolling,
                "id": "ODAY",
                "schedule": "SWEB",
                "name": "Business hours",
                "type": "rolling_users",
                "level": 1,
                "start": "2026-11-02T07:00:00",
                "rotation_start": "2026-11-02T07:00:00",
                "duration": 28800,
                "frequency": "daily",
                "by_day": ["MO", "TU", "WE", "TH", "FR"],
                "rolling_users": [["U4", "U1"], ["U2"]],
            },
            {
                "id": "OOVR",
                "schedule": "SWEB",
                "name": "Bob covers Wednesday",
                "type": "override",
                "team_id": None,
                "time_zone": None,
                "start": "2026-11-26T00:00:00",
                "rotation_start": "2026-11-26T00:00:00",
                "duration": 86400,
                "users": ["U2"],
            },
            {
                "id": "OPAST",
                "schedule": "SWEB",
                "name": "Long over",
                "type": "override",
                "team_id": None,
                "time_zone": None,
                "start": "2026-10-01T00:00:00",
                "rotation_start": "2026-10-01T00:00:00",
                "duration": 3600,
                "users": ["U4"],
            },
            {
                **rolling,
                "id": "OREC",
                "schedule": None,
                "name": "Month end",
                "type": "recurrent_event",
                "level": 0,
                "start": "2026-11-30T00:00:00",
                "rotation_start": "2026-11-30T00:00:00",
                "duration": 86400,
                "frequency": "monthly",
                "by_day": None,
                "users": ["U4"],
            },
        ],
        "schedules/SICAL/final_shifts": [
            {
                "user_pk": "U1",
                "user_email": "alice@example.com",
                "user_username": "alice",
                "shift_start": "2026-11-24T09:00:00Z",
                "shift_end": "2026-11-24T17:00:00Z",
            }
        ],
        "escalation_chains": [
            {"id": "CDEF", "name": "Default", "team_id": None},
            {"id": "CNIGHT", "name": "Night", "team_id": None},
        ],
        "escalation_policies": [
            {
                "id": "E1",
                "escalation_chain_id": "CDEF",
                "position": 0,
                "type": "notify_persons",
                "important": False,
                "persons_to_notify": ["U1"],
            },
            {
                "id": "E2",
                "escalation_chain_id": "CDEF",
                "position": 1,
                "type": "wait",
                "duration": 300,
            },
            {
                "id": "E3",
                "escalation_chain_id": "CDEF",
                "position": 2,
                "type": "notify_on_call_from_schedule",
                "important": False,
                "notify_on_call_from_schedule": "SWEB",
            },
            {
                "id": "E4",
                "escalation_chain_id": "CDEF",
                "position": 3,
                "type": "wait",
                "duration": 900,
            },
            {
                "id": "E5",
                "escalation_chain_id": "CDEF",
                "position": 4,
                "type": "notify_persons",
                "important": True,
                "persons_to_notify": ["U3"],
            },
            {
                "id": "E6",
                "escalation_chain_id": "CDEF",
                "position": 5,
                "type": "trigger_webhook",
                "action_to_trigger": "WH1",
            },
            {"id": "E7", "escalation_chain_id": "CDEF", "position": 6, "type": "repeat_escalation"},
            {
                "id": "E8",
                "escalation_chain_id": "CNIGHT",
                "position": 0,
                "type": "wait",
                "duration": 60,
            },
            {
                "id": "E9",
                "escalation_chain_id": "CNIGHT",
                "position": 1,
                "type": "notify_person_next_each_time",
                "important": False,
                "persons_to_notify_next_each_time": ["U2", "U4"],
            },
        ],
        "routes": [
            {
                "id": "R1",
                "integration_id": "IPROM",
                "escalation_chain_id": "CNIGHT",
                "routing_type": "regex",
                "routing_regex": "us-(east|west)",
                "position": 0,
                "is_the_last_route": False,
                "slack": {"channel_id": None},
            },
            {
                "id": "R2",
                "integration_id": "IPROM",
                "escalation_chain_id": "CDEF",
                "routing_type": "regex",
                "routing_regex": ".*",
                "position": 1,
                "is_the_last_route": True,
                "slack": {"channel_id": None},
            },
        ],
        "integrations": [
            integration(
                "IPROM",
                "Prometheus",
                "alertmanager",
                "CDEF",
                grouping_key="{{ payload.groupLabels.cluster }}",
            ),
            integration("IGRAF", "Grafana Alerting", "grafana_alerting", "CNIGHT"),
            integration("IHOOK", "Custom webhook", "webhook", None),
            integration("IDIRECT", "Direct paging", "direct_paging", None),
        ],
    }


def integration(
    id_: str, name: str, kind: str, chain: str | None, grouping_key: str | None = None
) -> dict[str, Any]:
    return {
        "id": id_,
        "name": name,
        "team_id": None,
        "link": f"https://oncall.example.com/integrations/v1/{kind}/abc/",
        "inbound_email": None,
        "type": kind,
        "default_route": {"id": f"R{id_}", "escalation_chain_id": chain, "slack": {}},
        "templates": {
            "grouping_key": grouping_key,
            "resolve_signal": None,
            "acknowledge_signal": None,
            "source_link": None,
            "slack": {"title": None, "message": None, "image_url": None},
            "web": {"title": None, "message": None, "image_url": None},
        },
    }


@pytest.fixture
def now(time_machine: TimeMachineFixture) -> datetime:
    time_machine.move_to(NOW, tick=False)
    return NOW


@pytest.fixture
def people(db: None) -> dict[str, User]:
    return {
        name: UserFactory(username=name, email=f"{name}@example.com")
        for name in ("alice", "bob", "dave")
    }


@pytest.fixture
def oncall(now: datetime, people: dict[str, User], redis: Redis) -> Iterator[Api]:
    with api_server("oncall", TOKEN) as api:
        api.lists = oncall_config()
        yield api


def run(api: Api, *extra: str, token: str = TOKEN) -> str:
    out = StringIO()
    call_command("import_config", "oncall", "--url", api.url, "--token", token, *extra, stdout=out)
    return out.getvalue()


def counts() -> dict[str, int]:
    models = (Schedule, Rotation, Override, EscalationPolicy, EscalationLevel, Service, Integration)
    return {model.__name__: model.objects.count() for model in models}


def test_an_oncall_setup_comes_over_in_one_command(oncall: Api, people: dict[str, User]) -> None:
    handmade = Schedule.objects.create(name="Primary", slug="primary")
    oncall.throttle_once.add("/api/v1/schedules/")

    out = run(oncall)

    alice, bob, dave = people["alice"], people["bob"], people["dave"]
    assert "People matched by email: 3" in out
    # The hand-made schedule of the same name is left alone.
    assert not handmade.rotations.exists()
    primary = Schedule.objects.get(name="Primary (from Grafana OnCall)")
    assert primary.time_zone == "Europe/Berlin"
    assert sorted(primary.rotations.values_list("name", "shift_unit", "shift_length")) == [
        ("Business hours (1)", "days", 1),
        ("Business hours (2)", "days", 1),
        ("Weekly", "weeks", 1),
    ]
    # Monday 24 Nov, noon: the weekly turn (carol, who has no account, left
    # out) is bob's; the day's group is dave and alice together.
    at = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert set(who_is_on_call(primary, at=at)) == {bob, dave, alice}
    # Wednesday: bob's override, not the rotations.
    assert who_is_on_call(primary, at=datetime(2026, 11, 26, 6, 0, tzinfo=UTC)) == [bob]
    assert primary.overrides.count() == 1  # the override that is over stays behind

    legacy = Schedule.objects.get(name="Legacy iCal")
    assert who_is_on_call(legacy, at=datetime(2026, 11, 24, 10, 0, tzinfo=UTC)) == [alice]
    assert who_is_on_call(legacy, at=datetime(2026, 11, 24, 18, 0, tzinfo=UTC)) == []

    default = EscalationPolicy.objects.get(name="Default")
    levels = list(default.levels.all())
    assert [
        (level.delay_minutes, list(level.users.all()), list(level.schedules.all()))
        for level in levels
    ] == [(5, [alice], []), (15, [], [primary])]
    assert default.repeat_count == 5
    night = EscalationPolicy.objects.get(name="Night")
    assert set(night.levels.get().users.all()) == {bob, dave}

    prometheus = Service.objects.get(name="Prometheus")
    assert prometheus.escalation_policy == default
    assert Service.objects.get(name="Grafana Alerting").escalation_policy == night
    assert Service.objects.get(name="Custom webhook").escalation_policy is None
    assert not Service.objects.filter(name="Direct paging").exists()
    kinds = {i.service.name: i.kind for i in Integration.objects.select_related("service")}
    assert kinds == {
        "Prometheus": Kind.ALERTMANAGER,
        "Grafana Alerting": GRAFANA_KIND,
        "Custom webhook": Kind.EVENTS_V2,
    }

    # What did not come over, each with its reason.
    for expected in (
        "user carol@example.com: no active triage user with this email; left out of "
        "rotation 'Weekly'",
        "level 3 of policy 'Default': it would page nobody in triage",
        "(trigger_webhook) of escalation chain 'Default': outgoing webhooks are not imported",
        "a wait before anyone is notified",
        "triage has no round robin",
        "integration 'Prometheus': templates grouping_key: Jinja templates are not imported",
        "route 'us-(east|west)' (regex): triage has no routing rules",
        "shift 'Month end' of schedule 'Database': monthly frequency",
        "day restrictions",
        "each turn is on call for 8 h of every 24 h",
        "layer priorities",
        "a direct_paging integration has no sender to move",
        "an iCal schedule",
    ):
        assert expected in out

    # The keys come last, each working at once.
    keys = KEY.findall(out[out.index("New integration keys") :])
    assert len(keys) == 3
    assert {authenticate_key(key).service.name for key in keys} == {  # type: ignore[union-attr]
        "Prometheus",
        "Grafana Alerting",
        "Custom webhook",
    }
    assert f"/integrations/alertmanager/{keys[0]}" in out


def test_it_pages_through_lists_on_the_given_host_with_the_token(oncall: Api) -> None:
    oncall.throttle_once.add("/api/v1/users/")

    run(oncall)

    users = oncall.seen("/api/v1/users/")
    # Throttled once, then two pages of two; `next` named "oncall-engine:8080",
    # but only its query was used, on the URL given.
    assert [r["query"].get("page") for r in users] == [None, None, ["2"]]
    assert {r["query"]["perpage"][0] for r in users} == {"100", "2"}
    assert all(r["headers"]["Authorization"] == TOKEN for r in oncall.requests)
    assert User.objects.count() == 3  # nobody is created


def test_a_second_run_updates_instead_of_duplicating(oncall: Api) -> None:
    first = run(oncall)
    before = counts()
    oncall.lists["escalation_chains"][0]["name"] = "Default (renamed)"
    oncall.lists["on_call_shifts"] = [
        s for s in oncall.lists["on_call_shifts"] if s["id"] != "ODAY"
    ]

    second = run(oncall)

    assert counts() == {**before, "Rotation": before["Rotation"] - 2}
    assert EscalationPolicy.objects.filter(name="Default (renamed)").exists()
    assert not EscalationPolicy.objects.filter(name="Default").exists()
    assert "update  schedule 'Legacy iCal'" in second
    assert "New integration keys" in first
    assert "New integration keys" not in second
    assert "keys are unchanged" in second
    assert not KEY.search(second)


def test_a_dry_run_prints_the_plan_and_writes_nothing(oncall: Api) -> None:
    out = run(oncall, "--dry-run")

    assert set(counts().values()) == {0}
    assert not ImportSource.objects.exists()
    assert "Dry run" in out
    assert "create  schedule 'Primary'" in out
    assert "A real run makes a new integration key for:" in out
    assert "Prometheus / Prometheus" in out
    assert not KEY.search(out)


def test_a_refused_token_imports_nothing(oncall: Api) -> None:
    with pytest.raises(CommandError, match=r"refused the token.*Nothing was imported"):
        run(oncall, token="wrong")

    assert set(counts().values()) == {0}


def test_an_error_half_way_through_reading_writes_nothing(oncall: Api) -> None:
    del oncall.lists["integrations"]  # the last list read answers 404

    with pytest.raises(CommandError, match="HTTP 404 to /api/v1/integrations/"):
        run(oncall)

    assert set(counts().values()) == {0}


@pytest.mark.parametrize(
    "url", ["ftp://oncall.example.com", "https://x.example.com/?a=1", "oncall"]
)
def test_a_url_that_is_not_an_api_url_is_refused(url: str, db: None) -> None:
    with pytest.raises(CommandError, match="Nothing was imported"):
        call_command("import_config", "oncall", "--url", url, "--token", TOKEN, stdout=StringIO())


def test_an_unreachable_oncall_says_so(db: None) -> None:
    with pytest.raises(
        CommandError, match=re.escape("Cannot reach Grafana OnCall at http://127.0.0.1:9")
    ):
        call_command(
            "import_config",
            "oncall",
            "--url",
            "http://127.0.0.1:9/api/v1/",
            "--token",
            TOKEN,
            stdout=StringIO(),
        )


def test_shifts_and_steps_it_cannot_map_are_listed_and_the_rest_comes_over(
    oncall: Api, people: dict[str, User]
) -> None:
    shifts = oncall.lists["on_call_shifts"]
    base = {k: shifts[0][k] for k in ("schedule", "level", "by_month", "by_monthday", "team_id")}
    shifts += [
        {**base, "id": "ONOSTART", "name": "Broken", "type": "rolling_users", "duration": 60},
        {
            **base,
            "id": "OWEIRD",
            "name": "Weird",
            "type": "weird",
            "start": "2026-11-01T00:00:00",
            "duration": 60,
        },
        {
            **base,
            "id": "OGONE",
            "name": "Gone",
            "type": "rolling_users",
            "frequency": "daily",
            "start": "2026-01-01T00:00:00",
            "duration": 86400,
            "until": "2026-02-01T00:00:00",
            "rolling_users": [["U1"]],
        },
        {
            **base,
            "id": "OEMPTY",
            "name": "Empty",
            "type": "rolling_users",
            "frequency": "daily",
            "start": "2026-01-01T00:00:00",
            "duration": 86400,
            "rolling_users": [[]],
        },
        {
            **base,
            "id": "OHOURS",
            "name": "Hours",
            "type": "rolling_users",
            "frequency": "hourly",
            "interval": 4,
            "start": "2026-11-23T00:00:00",
            "duration": 14400,
            "until": "2027-01-01T00:00:00",
            "start_rotation_from_user_index": 1,
            "rolling_users": [["U1"], ["U2"], ["U4"]],
        },
        {
            **base,
            "id": "OPAIR",
            "name": "Pair",
            "type": "recurrent_event",
            "frequency": "weekly",
            "start": "2026-11-02T00:00:00",
            "duration": 604800,
            "users": ["U1", "U2"],
        },
    ]
    oncall.lists["schedules"][0]["ical_url_overrides"] = "https://calendar.example.com/o.ics"
    oncall.lists["escalation_policies"] += [
        {
            "id": "E10",
            "escalation_chain_id": "CNIGHT",
            "position": 2,
            "type": "wait",
            "duration": 120,
        },
        {
            "id": "E11",
            "escalation_chain_id": "CNIGHT",
            "position": 3,
            "type": "wait",
            "duration": 60,
        },
        {
            "id": "E12",
            "escalation_chain_id": "CNIGHT",
            "position": 4,
            "type": "notify_team_members",
            "team_to_notify": "T1",
        },
    ]

    out = run(oncall)

    alice, bob, dave = people["alice"], people["bob"], people["dave"]
    hours = Rotation.objects.get(name="Hours")
    assert (hours.shift_unit, hours.shift_length) == ("hours", 4)
    assert [m.user for m in hours.members.all()] == [bob, dave, alice]  # from index 1
    pair = Rotation.objects.filter(name__startswith="Pair").order_by("name")
    assert [[m.user for m in r.members.all()] for r in pair] == [[alice], [bob]]
    assert not Rotation.objects.filter(name__in=["Gone", "Empty", "Weird", "Broken"]).exists()
    assert EscalationPolicy.objects.get(name="Night").levels.get().delay_minutes == 3
    for expected in (
        "shift 'Broken' of schedule 'Primary': it has no start or duration",
        "shift 'Weird' of schedule 'Primary': unknown shift type 'weird'",
        "shift 'Empty' of schedule 'Primary': it has nobody in it",
        "shift 'Hours' of schedule 'Primary': end: it ends 2027-01-01 00:00 UTC",
        "schedule 'Primary': overrides calendar: iCal override calendars are not followed",
        "OnCall teams are not imported",
    ):
        assert expected in out
    assert "Gone" not in out  # over: nothing to bring, nothing to say


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"<html>Bad gateway</html>", "answer to /api/v1/users/ is not JSON"),
        (b"[]", "answer to /api/v1/users/ is not JSON"),
        (b'{"results": 5}', "answer to /api/v1/users/ has no list of results"),
    ],
)
def test_an_answer_that_is_not_oncalls_stops_the_import(
    oncall: Api, answer: bytes, message: str
) -> None:
    oncall.raw["/api/v1/users/"] = (200, answer)

    with pytest.raises(CommandError, match=re.escape(message)):
        run(oncall)

    assert set(counts().values()) == {0}


def test_it_gives_up_when_oncall_keeps_throttling(oncall: Api) -> None:
    oncall.throttle_always.add("/api/v1/users/")
    oncall.retry_after = "0"

    with pytest.raises(CommandError, match="HTTP 429 to /api/v1/users/"):
        run(oncall)

    assert len(oncall.seen("/api/v1/users/")) == 5


def test_a_rerun_brings_back_what_was_deleted_in_triage_and_names_missing_links(
    oncall: Api,
) -> None:
    run(oncall)
    Schedule.objects.get(name="Legacy iCal").delete()
    oncall.lists["schedules"][1]["time_zone"] = "Mars/Olympus_Mons"
    oncall.lists["escalation_policies"][2]["notify_on_call_from_schedule"] = "SGONE"
    oncall.lists["integrations"][2]["default_route"]["escalation_chain_id"] = "CGONE"
    oncall.lists["users"][0]["email"] = "alice@elsewhere.example"  # alice has no account now
    oncall.lists["on_call_shifts"][1]["rolling_users"] = [["U3"]]  # carol only

    out = run(oncall)

    assert "create  schedule 'Legacy iCal'" in out
    assert not Override.objects.filter(schedule__name="Legacy iCal").exists()
    assert Schedule.objects.get(name="Database").time_zone == "UTC"
    assert "schedule 'Database': unknown time zone 'Mars/Olympus_Mons'; UTC is used" in out
    assert "level 2 of policy 'Default': schedule SGONE: that schedule was not imported" in out
    assert "level 1 of policy 'Default': it would page nobody in triage" in out
    assert "service 'Custom webhook': escalation policy CGONE: that policy was not imported" in out
    weekly = Rotation.objects.get(name="Weekly")
    assert [m.user.username for m in weekly.members.all()] == ["bob"]
    assert not Rotation.objects.filter(name__startswith="Business hours").exists()
    assert "rotation 'Business hours' of schedule 'Primary': nobody in it is a triage user" in out


def test_the_outbound_allowance_is_the_named_host_only(db: None) -> None:
    policy = policy_allowing("http://oncall.internal:8080/api/v1")

    assert policy.allows("oncall.internal", ipaddress.ip_address("10.0.0.5"))
    assert not policy.allows("redis.internal", ipaddress.ip_address("10.0.0.6"))
    assert not policy.allows("169.254.169.254", ipaddress.ip_address("169.254.169.254"))


def test_a_new_key_of_another_kind_points_at_the_integrations_page(web: Service) -> None:
    new = create_integration(service=web, kind=Kind.HEARTBEAT, name="Backups")

    lines = sender_lines(new)

    assert lines[0] == "Web shop / Backups (Heartbeat monitor)"
    assert lines[1] == f"key: {new.raw} (where to send: http://localhost:8000/integrations)"
