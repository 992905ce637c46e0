"""Alert storms: past a service's threshold of new incidents within its window,
further new alerts join one "Alert storm on <service>" incident, listed on it,
paged once, resolved with its alerts, split out by a responder."""

from __future__ import annotations

import json
import re
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections
from django.test import Client
from django.utils import timezone
from redis import Redis
from time_machine import TimeMachineFixture

from incidents import hotpath, storms
from incidents import services as incident_services
from incidents.models import (
    OPEN_STATUSES,
    EventKind,
    Incident,
    Service,
    Status,
    StormAlert,
    StormAlertStatus,
)
from incidents.services import Opened
from integrations import services
from integrations.keys import NewKey
from integrations.mcp_server import Principal, acting_as, build_server
from integrations.payloads import parse_alertmanager
from paging.models import Page
from tests.factories import UserFactory, contact, policy_with_levels
from tests.integration_factories import am_alert, am_notification, integration, trigger
from tests.test_integrations_mcp import call

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(web: Service, redis: Redis) -> NewKey:
    web.storm_threshold = 3
    web.save()
    return integration(web, "events_v2")


def send(client: Client, body: dict[str, Any]) -> Any:
    return client.post(
        "/integrations/v2/enqueue", data=json.dumps(body), content_type="application/json"
    )


def fire(client: Client, events: NewKey, *keys: str, summary: str = "Disk full") -> list[Any]:
    answers = [
        send(client, trigger(events.raw, dedup_key=key, payload={"summary": summary}))
        for key in keys
    ]
    assert [answer.status_code for answer in answers] == [202] * len(keys)
    return answers


def resolve(client: Client, events: NewKey, key: str) -> Any:
    body = {"routing_key": events.raw, "event_action": "resolve", "dedup_key": key}
    answer = send(client, body)
    assert answer.status_code == 202
    return answer


def storm_of(service: Service) -> Incident:
    return Incident.objects.get(service=service, is_storm=True, status__in=["triggered"])


def test_past_the_threshold_new_alerts_join_one_storm_incident(
    client: Client, web: Service, events: NewKey
) -> None:
    fire(client, events, "a", "b", "c")
    answers = fire(client, events, "d", "e", "f")
    assert Incident.objects.filter(is_storm=False).count() == 3
    storm = storm_of(web)
    assert storm.title == "Alert storm on Web shop"
    assert Incident.objects.count() == 4
    # Each sender gets its own dedup key back, as PagerDuty answers.
    assert [answer.json()["dedup_key"] for answer in answers] == ["d", "e", "f"]
    listed = StormAlert.objects.filter(storm=storm).order_by("pk")
    assert [(a.dedup_key, a.name, a.count) for a in listed] == [
        ("d", "Disk full", 1),
        ("e", "Disk full", 1),
        ("f", "Disk full", 1),
    ]


def test_the_default_is_twenty_incidents_a_minute(client: Client, web: Service) -> None:
    events = integration(web, "events_v2")
    fire(client, events, *[f"key-{n}" for n in range(25)])
    assert Incident.objects.filter(service=web).count() == 21
    assert storm_of(web).storm_alerts.count() == 5


def test_a_threshold_of_zero_turns_storms_off(client: Client, web: Service) -> None:
    web.storm_threshold = 0
    web.save()
    events = integration(web, "events_v2")
    fire(client, events, *[f"key-{n}" for n in range(25)])
    assert Incident.objects.filter(service=web, is_storm=False).count() == 25
    assert not Incident.objects.filter(is_storm=True).exists()


def test_repeats_count_on_the_storm_and_an_incidents_own_alerts_stay_with_it(
    client: Client, web: Service, events: NewKey
) -> None:
    fire(client, events, "a", "b", "c", "d")
    fire(client, events, "d", "d", "a")
    storm = storm_of(web)
    assert StormAlert.objects.get(dedup_key="d").count == 3
    own = Incident.objects.get(dedup_key="a")
    assert own.timeline.filter(kind=EventKind.ALERT).count() == 1  # "a" is not in the storm
    assert list(storm.storm_alerts.values_list("dedup_key", flat=True)) == ["d"]


def test_the_storm_pages_once_through_the_services_policy(
    client: Client, web: Service, events: NewKey, django_capture_on_commit_callbacks: Any
) -> None:
    ana = UserFactory(username="ana")
    contact(ana)
    web.escalation_policy = policy_with_levels((5, [ana]))
    web.save()
    with django_capture_on_commit_callbacks(execute=True):
        fire(client, events, "a", "b", "c")
    with django_capture_on_commit_callbacks(execute=True):
        fire(client, events, *[f"storm-{n}" for n in range(30)])
    storm = storm_of(web)
    assert Page.objects.filter(incident=storm).count() == 1
    assert Page.objects.count() == 4


def test_the_storm_resolves_when_all_its_alerts_have(
    client: Client, web: Service, events: NewKey
) -> None:
    fire(client, events, "a", "b", "c", "d", "e")
    storm = storm_of(web)
    answer = resolve(client, events, "d")
    assert answer.json()["dedup_key"] == "d"
    storm.refresh_from_db()
    assert storm.status == Status.TRIGGERED
    assert StormAlert.objects.get(dedup_key="d").status == StormAlertStatus.RESOLVED
    resolve(client, events, "e")
    storm.refresh_from_db()
    assert storm.status == Status.RESOLVED
    assert storm.timeline.filter(kind=EventKind.RESOLVED).get().message == (
        "All alerts in the storm resolved (Events API v2)."
    )
    # The incidents of their own are untouched, and a later resolve is dropped.
    assert Incident.objects.filter(is_storm=False, status=Status.TRIGGERED).count() == 3
    resolve(client, events, "e")


def test_resolving_the_storm_by_hand_resolves_its_alerts(
    client: Client, web: Service, events: NewKey, alice: Any
) -> None:
    fire(client, events, "a", "b", "c", "d")
    incident_services.resolve_incident(storm_of(web), actor=alice)
    assert StormAlert.objects.get().status == StormAlertStatus.RESOLVED
    fire(client, events, "d")  # the window is still full: a new storm opens
    assert Incident.objects.filter(is_storm=True).count() == 2


def test_the_storm_ends_after_a_quiet_period(
    client: Client, web: Service, events: NewKey, time_machine: TimeMachineFixture
) -> None:
    web.storm_quiet_seconds = 600
    web.save()
    time_machine.move_to(timezone.now(), tick=False)
    fire(client, events, "a", "b", "c", "d")
    time_machine.shift(timedelta(seconds=300))  # past the window, within the quiet period
    fire(client, events, "e")
    assert storm_of(web).storm_alerts.count() == 2
    time_machine.shift(timedelta(seconds=601))  # quiet since "e"
    fire(client, events, "f")
    assert Incident.objects.get(dedup_key="f").is_storm is False
    # An alert still firing in the storm stays there, and a resolve still finds it.
    fire(client, events, "d")
    assert StormAlert.objects.get(dedup_key="d").count == 2
    resolve(client, events, "d")
    resolve(client, events, "e")
    assert Incident.objects.get(is_storm=True).status == Status.RESOLVED


def test_an_acknowledge_for_one_alert_does_not_acknowledge_the_storm(
    client: Client, web: Service, events: NewKey
) -> None:
    fire(client, events, "a", "b", "c", "d")
    send(client, {"routing_key": events.raw, "event_action": "acknowledge", "dedup_key": "d"})
    assert storm_of(web).status == Status.TRIGGERED


# --- Alertmanager ------------------------------------------------------------


def am_post(client: Client, key: str, *alerts: dict[str, Any]) -> Any:
    answer = client.post(
        "/integrations/alertmanager",
        data=json.dumps(am_notification(*alerts)),
        content_type="application/json",
        headers={"authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 200, answer.content
    return answer


def test_an_alertmanager_flood_opens_at_most_the_threshold_plus_the_storm(
    client: Client, web: Service, redis: Redis
) -> None:
    am = integration(web, "alertmanager", grouping="fingerprint")
    flood = [am_alert(f"{n:04x}", alertname=f"Down{n % 3}") for n in range(500)]
    am_post(client, am.raw, *flood)
    assert Incident.objects.filter(service=web).count() == 21
    storm = storm_of(web)
    assert storm.storm_alerts.count() == 480
    body = client.get(f"/incidents/{storm.pk}", headers={"accept": "application/json"})
    assert body.status_code == 401  # anonymous: the storm's page needs a login
    # Alerts that joined the storm resolve there; the storm with the last one.
    am_post(client, am.raw, *[dict(a, status="resolved") for a in flood[:300]])
    storm.refresh_from_db()
    assert storm.status == Status.TRIGGERED
    am_post(client, am.raw, *[dict(a, status="resolved") for a in flood[300:]])
    storm.refresh_from_db()
    assert storm.status == Status.RESOLVED
    assert not Incident.objects.exclude(status=Status.RESOLVED).exists()


def test_alertmanager_alerts_one_notification_each_join_the_storm(
    client: Client, web: Service, redis: Redis
) -> None:
    web.storm_threshold = 2
    web.save()
    am = integration(web, "alertmanager", grouping="fingerprint")
    for n in range(4):
        am_post(client, am.raw, am_alert(f"{n:04x}"))
    assert Incident.objects.count() == 3
    am_post(client, am.raw, am_alert("0003", status="resolved"))
    am_post(client, am.raw, am_alert("0002", status="resolved"))
    assert storm_of_resolved(web).status == Status.RESOLVED


def storm_of_resolved(service: Service) -> Incident:
    return Incident.objects.get(service=service, is_storm=True)


# --- what responders see and do ---------------------------------------------


def test_the_incident_page_lists_the_storms_alerts_and_the_dashboard_one_row(
    alice_client: Client, client: Client, web: Service, events: NewKey
) -> None:
    fire(client, events, "a", "b", "c")
    fire(client, events, "d", "e", summary="Disk full")
    fire(client, events, "f", summary="CPU hot")
    fire(client, events, "d")
    storm = storm_of(web)
    page = alice_client.get(f"/incidents/{storm.pk}").content.decode()
    assert "Alerts in this storm" in page
    assert "3 alerts</strong> (4 triggers), 3 still firing" in page
    assert "2 distinct names: CPU hot, Disk full." in page
    assert page.count("Split out</button>") == 3
    dashboard = alice_client.get("/").content.decode()
    assert dashboard.count("Alert storm on Web shop") == 1
    assert '<strong class="storm-count">3 alerts</strong>' in dashboard


def test_splitting_an_alert_out_opens_its_own_incident(
    alice_client: Client, client: Client, web: Service, events: NewKey
) -> None:
    fire(client, events, "a", "b", "c", "d", "e")
    storm = storm_of(web)
    alert = StormAlert.objects.get(dedup_key="d")
    answer = alice_client.post(f"/incidents/{storm.pk}/storm-alerts/{alert.pk}/split")
    split = Incident.objects.get(dedup_key="d", is_storm=False)
    assert answer.status_code == 302
    assert answer["Location"] == f"/incidents/{split.pk}"
    assert split.title == "Disk full"
    note = storm.timeline.filter(kind=EventKind.NOTE).get()
    assert note.message == f"Split out Disk full into #{split.pk}"
    assert note.actor is not None
    assert note.actor.get_username() == "alice"
    # Its repeats go to its own incident now; splitting again is refused.
    fire(client, events, "d")
    assert split.timeline.filter(kind=EventKind.ALERT).count() == 1
    again = alice_client.post(f"/incidents/{storm.pk}/storm-alerts/{alert.pk}/split", follow=True)
    assert "only an alert still firing in an open storm can be split out" in (
        again.content.decode()
    )
    # The last firing alert split out leaves nothing in the storm: it resolves.
    last = StormAlert.objects.get(dedup_key="e")
    alice_client.post(f"/incidents/{storm.pk}/storm-alerts/{last.pk}/split")
    storm.refresh_from_db()
    assert storm.status == Status.RESOLVED


def test_split_needs_a_login_and_csrf_and_an_alert_of_that_storm(
    client: Client, web: Service, events: NewKey, alice: Any
) -> None:
    fire(client, events, "a", "b", "c", "d")
    storm = storm_of(web)
    alert = StormAlert.objects.get()
    path = f"/incidents/{storm.pk}/storm-alerts/{alert.pk}/split"
    assert client.post(path).status_code == 302  # to the login page
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert strict.post(path).status_code == 403
    client.force_login(alice)
    other = Incident.objects.get(dedup_key="a")
    assert client.post(f"/incidents/{other.pk}/storm-alerts/{alert.pk}/split").status_code == 404
    assert StormAlert.objects.get().status == StormAlertStatus.FIRING


def test_the_api_and_mcp_show_the_storm(
    client: Client, web: Service, events: NewKey, read_token: Any
) -> None:
    fire(client, events, "a", "b", "c", "d", "e", "d")
    storm = storm_of(web)
    auth = {"authorization": f"Bearer {read_token.raw}"}
    body = client.get(f"/v1/incidents/{storm.pk}", headers=auth).json()
    assert body["is_storm"] is True
    assert body["storm"]["alerts"] == 2
    assert body["storm"]["triggers"] == 3
    assert body["storm"]["names"] == ["Disk full"]
    assert [(a["dedup_key"], a["count"]) for a in body["storm_alerts"]] == [("d", 2), ("e", 1)]
    listed = client.get("/v1/incidents/open", headers=auth).json()["items"]
    assert [item["storm"] is not None for item in listed].count(True) == 1
    with acting_as(Principal(user=read_token.token.user, can_write=False)):
        tool = call(build_server(), "get_incident", {"incident_id": storm.pk}).structured_content
    assert tool["storm"]["alerts"] == 2
    assert [a["dedup_key"] for a in tool["storm_alerts"]] == ["d", "e"]


# --- concurrency at the threshold ---------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_new_alerts_at_the_threshold_open_exactly_one_storm(
    web: Service, redis: Redis
) -> None:
    web.storm_threshold = 5
    web.save()
    events = integration(web, "events_v2").integration
    count = 12
    barrier = threading.Barrier(count)
    results: list[Opened | Exception] = []

    def deliver(n: int) -> None:
        try:
            barrier.wait()
            results.append(
                incident_services.open_incident(
                    service=events.service,
                    title=f"alert {n}",
                    severity="error",
                    source="events_v2",
                    dedup_key=f"key-{n}",
                )
            )
        except Exception as exc:  # pragma: no cover - reported by the assert below
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not [r for r in results if isinstance(r, Exception)]
    assert Incident.objects.filter(is_storm=False).count() == 5
    assert Incident.objects.filter(is_storm=True).count() == 1
    assert StormAlert.objects.count() == 7


def test_the_bulk_path_matches_one_alert_at_a_time(client: Client, web: Service) -> None:
    """One notification of 30 alerts and 30 notifications of one end alike."""
    other = Service.objects.create(name="Reference", slug="reference")
    bulk = integration(web, "alertmanager", grouping="fingerprint").integration
    one = integration(other, "alertmanager", grouping="fingerprint").integration
    flood = [am_alert(f"{n:04x}") for n in range(30)]
    services.ingest_alertmanager(bulk, parsed(*flood))
    for alert in flood:
        services.ingest_alertmanager(one, parsed(alert))
    for service in (web, other):
        assert Incident.objects.filter(service=service).count() == 21
        assert StormAlert.objects.filter(storm__service=service).count() == 10


def parsed(*alerts: dict[str, Any]) -> Any:
    return parse_alertmanager(am_notification(*alerts), need_group_key=True)


# --- joining a storm that is storming: no service lock ------------------------


def _alert(key: str, severity: str = "error", title: str = "Disk full") -> storms.Alerted:
    return storms.Alerted(
        dedup_key=key, title=title, severity=severity, details="on db1", source="events_v2"
    )


def _storming(service: Service, now: Any) -> Incident:
    """An open storm on ``service`` (threshold 1): "own" has its own incident,
    "first" is the storm's first alert."""
    service.storm_threshold = 1
    service.save()
    for key in ("own", "first"):
        incident_services.open_incident(
            service=service,
            title="Disk full",
            severity="warning",
            source="events_v2",
            dedup_key=key,
            now=now,
        )
    return Incident.objects.get(service=service, is_storm=True)


def _storm_rows(storm: Incident) -> list[dict[str, Any]]:
    return [
        {
            field.name: getattr(row, field.attname)
            for field in StormAlert._meta.concrete_fields
            if field.name not in {"id", "storm"}
        }
        for row in StormAlert.objects.filter(storm=storm).order_by("dedup_key")
    ]


def test_a_storms_triggers_write_the_rows_the_locked_path_writes(redis: Redis) -> None:
    """incidents.hotpath's storm statements against storms.join (the ORM path
    under the locks): a new alert, a repeat, an alert firing again after its
    resolve, and a more severe alert raising the storm's severity."""
    now = timezone.now()
    fast = _storming(Service.objects.create(name="Fast", slug="fast"), now)
    locked = _storming(Service.objects.create(name="Locked", slug="locked"), now)
    steps: list[tuple[str, storms.Alerted]] = [
        ("join", _alert("new")),
        ("join", _alert("new", title="Disk full again")),
        ("join", _alert("first")),
        ("resolve", _alert("new")),
        ("join", _alert("new", severity="critical")),
        ("join", _alert("later", severity="info")),
    ]
    for n, (step, alert) in enumerate(steps, start=1):
        at = now + timedelta(seconds=n)
        if step == "resolve":
            for storm in (fast, locked):
                storms.resolve_alerts(storm, [alert.dedup_key], now=at)
            continue
        joined = storms.join_storming(fast.service, alert, now=at)
        assert joined is not None
        assert joined.pk == fast.pk
        storms.join(storms.open_storm_locked(locked.service) or locked, [alert], now=at)
    assert _storm_rows(fast) == _storm_rows(locked)
    assert [row["count"] for row in _storm_rows(fast)] == [2, 1, 3]  # first, later, new
    fast.refresh_from_db()
    locked.refresh_from_db()
    assert fast.severity == locked.severity == "critical"


def test_a_quiet_storm_is_joined_under_the_services_lock(redis: Redis) -> None:
    now = timezone.now()
    storm = _storming(Service.objects.create(name="Quiet", slug="quiet"), now)
    later = now + limits_quiet(storm) + timedelta(seconds=1)
    # A new alert after the quiet period is decided under the lock (it may
    # open its own incident); an alert still firing in the storm joins it.
    assert storms.join_storming(storm.service, _alert("new"), now=later) is None
    assert storms.join_storming(storm.service, _alert("first"), now=later) == storm
    assert StormAlert.objects.get(dedup_key="first").count == 2


def limits_quiet(storm: Incident) -> timedelta:
    return storms.limits(storm.service).quiet


def test_a_storm_joiner_finding_the_key_opened_meanwhile_lets_that_incident_have_it(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key's own incident opened between open_incident's look-up and the
    storm's lock (a split, or a request that held the storm's row first): the
    alert goes to that incident, never into the storm as well."""
    now = timezone.now()
    storm = _storming(Service.objects.create(name="Race", slug="race"), now)
    alert = _alert("own")
    with pytest.raises(storms.IncidentOpenedMeanwhile):
        storms.join_storming(storm.service, alert, now=now)
    look_up = incident_services._join
    missed: list[bool] = []

    def miss_once(request: Any) -> Opened | None:
        if not missed:
            missed.append(True)
            return None
        return look_up(request)

    monkeypatch.setattr(incident_services, "_join", miss_once)
    opened = incident_services.open_incident(
        service=storm.service,
        title="Disk full",
        severity="error",
        source="events_v2",
        dedup_key="own",
        now=now,
    )
    own = Incident.objects.get(dedup_key="own")
    assert opened.incident == own
    assert own.timeline.filter(kind=EventKind.ALERT).count() == 1
    assert not StormAlert.objects.filter(dedup_key="own").exists()


@pytest.mark.django_db(transaction=True)
def test_a_storms_new_alerts_do_not_wait_for_the_services_lock(
    client: Client, web: Service, redis: Redis
) -> None:
    """While another transaction holds the service's row lock (a new incident
    being decided), alerts joining a storm that is storming are accepted."""
    events = integration(web, "events_v2")
    web.storm_threshold = 1
    web.save()
    fire(client, events, "a", "b")
    holder = connections.create_connection("default")
    try:
        with holder.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("SELECT 1 FROM incidents_service WHERE id = %s FOR UPDATE", [web.pk])
            with connection.cursor() as own:
                own.execute("SET lock_timeout = '3s'")
            try:
                fire(client, events, "c", "d", "c")
            finally:
                with connection.cursor() as own:
                    own.execute("SET lock_timeout = 0")
            cursor.execute("ROLLBACK")
    finally:
        holder.close()
    storm = storm_of(web)
    assert [(a.dedup_key, a.count) for a in storm.storm_alerts.order_by("dedup_key")] == [
        ("b", 1),
        ("c", 2),
        ("d", 1),
    ]


@pytest.mark.django_db(transaction=True)
def test_joiners_racing_a_resolve_of_the_storm_lose_no_alert(web: Service, redis: Redis) -> None:
    """New alerts join a storming storm while a responder resolves it: each
    alert either joined before the resolve (and is resolved with the storm) or
    after it (and has a new home); none fires in a resolved storm, none lives
    in two places."""
    storm = _storming(web, timezone.now())
    count = 10
    barrier = threading.Barrier(count + 1)
    errors: list[Exception] = []

    def run(action: Any) -> None:
        try:
            barrier.wait()
            action()
        except Exception as exc:  # pragma: no cover - reported by the assert below
            errors.append(exc)
        finally:
            connection.close()

    def deliver(n: int) -> None:
        incident_services.open_incident(
            service=web,
            title=f"alert {n}",
            severity="error",
            source="events_v2",
            dedup_key=f"key-{n}",
        )

    def resolve_storm() -> None:
        incident_services.resolve_incident(Incident.objects.get(pk=storm.pk), actor=None)

    threads = [threading.Thread(target=run, args=(lambda n=n: deliver(n),)) for n in range(count)]
    threads.append(threading.Thread(target=run, args=(resolve_storm,)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert not StormAlert.objects.filter(
        status=StormAlertStatus.FIRING, storm__status=Status.RESOLVED
    ).exists()
    for n in range(count):
        key = f"key-{n}"
        homes = StormAlert.objects.filter(dedup_key=key).count()
        homes += Incident.objects.filter(dedup_key=key).count()
        assert homes == 1, key


def test_the_storm_statements_name_the_statuses_the_models_do() -> None:
    # The SQL spells out what the models define: a new open status or a
    # renamed alert status must change it too, or triggers would join a
    # resolved storm or miss a firing alert.
    for statement in (hotpath._LOCK_STORM, hotpath._JOIN_STORM):
        for listed in re.findall(r"status IN \(([^)]*)\)", statement):
            assert {s.strip(" '") for s in listed.split(",")} == set(OPEN_STATUSES)
    assert f"f.status = '{StormAlertStatus.FIRING}'" in hotpath._LOCK_STORM
    assert f"status = '{StormAlertStatus.FIRING}'" in hotpath._JOIN_STORM
