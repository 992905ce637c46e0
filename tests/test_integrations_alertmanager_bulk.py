"""A large Alertmanager (or Grafana) notification is applied in bulk: a fixed
number of statements whatever its size, the same incidents, timeline and
alerts as applying its alerts one by one, and each incident opened once when
two deliveries of it race."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from redis import Redis

from incidents import hooks
from incidents import services as incident_services
from incidents.models import EventKind, Incident, Service, Status
from integrations import services
from integrations.models import Alert, Integration
from integrations.payloads import AmNotification, parse_alertmanager
from paging import state
from paging.models import Page
from tests.factories import UserFactory, contact, policy_with_levels
from tests.integration_factories import am_alert, am_notification, integration

pytestmark = pytest.mark.django_db


def notification(*alerts: dict[str, Any], grafana: bool = False) -> AmNotification:
    body = am_notification(*alerts)
    if grafana:
        body.update(version="1", orgId=1, state="alerting", title="t", message="m")
    parsed = parse_alertmanager(body, need_group_key=True, grafana=grafana)
    assert not isinstance(parsed, list), parsed
    return parsed


def firing(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [am_alert(f"{n:04x}", instance=f"node-{n}") for n in range(start, start + count)]


def per_alert(service: Service, kind: str = "alertmanager") -> Integration:
    # These tests apply hundreds of alerts that each open an incident: storm
    # protection (tests/test_storms.py) is off for their service.
    service.storm_threshold = 0
    service.save(update_fields=["storm_threshold"])
    return integration(service, kind, grouping="fingerprint").integration


def statements(integration: Integration, body: AmNotification) -> int:
    with CaptureQueriesContext(connection) as queries:
        services.ingest_alertmanager(integration, body)
    return len(queries.captured_queries)


def test_a_notification_costs_the_same_statements_for_10_or_200_alerts(
    web: Service, redis: Redis
) -> None:
    small, large = per_alert(web), per_alert(Service.objects.create(name="Db", slug="db"))
    opening = (
        statements(small, notification(*firing(10))),
        statements(large, notification(*firing(200))),
    )
    assert opening[0] == opening[1]
    assert opening[0] <= 12
    # The same alerts again, with as many new ones: half join, half open.
    mixed = (
        statements(small, notification(*firing(20))),
        statements(large, notification(*firing(400))),
    )
    assert mixed[0] == mixed[1]
    assert mixed[0] <= 12
    assert Incident.objects.filter(service=large.service).count() == 400
    assert Alert.objects.filter(incident__service=large.service).count() == 400


def snapshot(service: Service) -> list[Any]:
    """Everything a responder sees of the service's incidents, ids left out."""
    found = []
    for incident in Incident.objects.filter(service=service).order_by("dedup_key", "pk"):
        found.append(
            (
                incident.dedup_key,
                incident.title,
                incident.severity,
                incident.details,
                incident.status,
                incident.source,
                # Of the request, which names the service: recomputed here.
                incident.request_fingerprint
                == incident_services.request_fingerprint(
                    service=service,
                    title=incident.title,
                    severity=incident.severity,
                    details=incident.details,
                    dedup_key=incident.dedup_key,
                ),
                incident.opened_at,
                incident.resolved_at,
                [
                    (kind, message.replace(str(service), "<service>"), data)
                    for kind, message, data in incident.timeline.order_by("pk").values_list(
                        "kind", "message", "data"
                    )
                ],
                list(
                    incident.alerts.order_by("fingerprint").values_list(
                        "fingerprint",
                        "status",
                        "labels",
                        "annotations",
                        "starts_at",
                        "ends_at",
                        "generator_url",
                        "links",
                        "first_seen_at",
                        "last_seen_at",
                    )
                ),
            )
        )
    return found


def apply_both(
    bulk: Integration, reference: Integration, body: AmNotification, now: datetime
) -> list[str]:
    """Apply ``body`` in bulk to one integration and alert by alert (the path
    triage took before) to the other; the outcomes must match."""
    outcomes = services.ingest_alertmanager(bulk, body, now=now)
    expected = services._one_by_one(reference, body, services._batches(reference, body), now)
    assert [(o.action, o.dedup_key) for o in outcomes] == [
        (o.action, o.dedup_key) for o in expected
    ]
    return [o.action for o in outcomes]


@pytest.mark.parametrize("kind", ["alertmanager", "grafana"])
def test_per_alert_incidents_match_applying_the_alerts_one_by_one(
    web: Service, redis: Redis, kind: str
) -> None:
    other = Service.objects.create(name="Reference", slug="reference")
    bulk, reference = per_alert(web, kind), per_alert(other, kind)
    grafana = kind == "grafana"
    now = timezone.now()
    first = notification(*firing(6), grafana=grafana)
    assert apply_both(bulk, reference, first, now) == ["opened"] * 6
    # Repeats (0, 1), resolves (2, 3), new alerts (6, 7), a resolve for an
    # alert triage never saw (9), with severities and summaries of their own.
    mixed = notification(
        am_alert("0000", instance="node-0"),
        am_alert("0001", instance="node-1", severity="critical", summary="node-1 again"),
        am_alert("0002", status="resolved", instance="node-2"),
        am_alert("0003", status="resolved", instance="node-3"),
        am_alert("0006", instance="node-6", severity="warning", summary="new"),
        am_alert("0007", alertname="NodeDown"),
        am_alert("0009", status="resolved"),
        grafana=grafana,
    )
    later = now + timezone.timedelta(minutes=1)
    actions = apply_both(bulk, reference, mixed, later)
    assert actions == ["joined", "joined", "resolved", "resolved", "opened", "opened", "dropped"]
    assert snapshot(web) == snapshot(other)
    assert Incident.objects.filter(service=web, status=Status.RESOLVED).count() == 2


def test_a_group_matches_applying_it_the_old_way_through_its_whole_life(
    web: Service, redis: Redis
) -> None:
    other = Service.objects.create(name="Reference", slug="reference")
    bulk = integration(web, "alertmanager").integration
    reference = integration(other, "alertmanager").integration
    now = timezone.now()
    steps = [
        (notification(am_alert("aa"), am_alert("bb", alertname="Load")), "opened"),
        (notification(am_alert("aa"), am_alert("bb"), am_alert("cc")), "joined"),
        (notification(am_alert("aa", status="resolved")), "updated"),
        (
            notification(am_alert("bb", status="resolved"), am_alert("cc", status="resolved")),
            "resolved",
        ),
        (notification(am_alert("aa", status="resolved")), "dropped"),
        (notification(am_alert("aa")), "opened"),
    ]
    for minute, (body, action) in enumerate(steps):
        at = now + timezone.timedelta(minutes=minute)
        assert apply_both(bulk, reference, body, at) == [action]
        assert snapshot(web) == snapshot(other)


def test_two_alerts_with_one_fingerprint_open_one_incident_and_repeat_on_it(
    web: Service, redis: Redis
) -> None:
    am = per_alert(web)
    outcomes = services.ingest_alertmanager(am, notification(am_alert("aa"), am_alert("aa")))
    assert [o.action for o in outcomes] == ["opened", "joined"]
    incident = Incident.objects.get()
    assert incident.timeline.filter(kind=EventKind.ALERT).count() == 1
    assert Alert.objects.count() == 1


def test_a_delivery_that_missed_an_incident_opened_meanwhile_joins_it(
    web: Service, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look-up ran before a concurrent delivery committed an incident
    with one of the keys: the insert fails on the unique index, everything
    rolls back, and the second attempt joins that incident."""
    am = per_alert(web)
    services.ingest_alertmanager(am, notification(am_alert("0001")))
    lookups: list[int] = []
    real = incident_services.lock_open_incidents

    def stale_first(service: Service, keys: Any) -> dict[str, Incident]:
        lookups.append(1)
        return {} if len(lookups) == 1 else real(service, keys)

    monkeypatch.setattr(incident_services, "lock_open_incidents", stale_first)
    outcomes = services.ingest_alertmanager(am, notification(*firing(3)))
    assert [o.action for o in outcomes] == ["opened", "joined", "opened"]
    assert len(lookups) == 2
    assert Incident.objects.count() == 3
    assert (
        Incident.objects.get(dedup_key="alertmanager:alert:0001")
        .timeline.filter(kind=EventKind.ALERT)
        .count()
        == 1
    )


def test_losing_twice_applies_the_alerts_one_by_one(
    web: Service, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    am = per_alert(web)
    services.ingest_alertmanager(am, notification(am_alert("0001")))

    def always_lost(**_: Any) -> Any:
        raise incident_services.LostRace("a concurrent delivery opened it first")

    monkeypatch.setattr(incident_services, "open_or_join_many", always_lost)
    outcomes = services.ingest_alertmanager(am, notification(*firing(3)))
    assert [o.action for o in outcomes] == ["opened", "joined", "opened"]
    assert Incident.objects.count() == 3


def test_open_or_join_many_refuses_repeated_dedup_keys(web: Service) -> None:
    alerting = incident_services.Alerting("k", "t", "error", "", {})
    with pytest.raises(ValueError, match="distinct dedup keys"):
        incident_services.open_or_join_many(
            service=web,
            source="alertmanager",
            alerts=[alerting, alerting],
            locked={},
            now=timezone.now(),
        )


class Counts(hooks.Lifecycle):
    def __init__(self) -> None:
        self.opened_ids: list[int] = []

        self.resolved_ids: list[int] = []

    def opened(self, incident: Incident, *, now: datetime) -> None:
        self.opened_ids.append(incident.pk)

    def resolved(self, incident: Incident, *, now: datetime) -> None:
        self.resolved_ids.append(incident.pk)


def test_bulk_opened_incidents_reach_every_hook_and_each_is_paged_once_then_forgotten(
    web: Service,
    redis: Redis,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    person = UserFactory(username="ana")
    contact(person)
    web.escalation_policy = policy_with_levels((5, [person]))
    web.save()
    counts = Counts()  # overrides only ``opened``: called for each one
    monkeypatch.setattr(hooks, "_lifecycles", [*hooks._lifecycles, counts])
    am = per_alert(web)
    with django_capture_on_commit_callbacks(execute=True):
        services.ingest_alertmanager(am, notification(*firing(5)))
    opened = sorted(Incident.objects.values_list("pk", flat=True))
    assert sorted(counts.opened_ids) == opened
    assert sorted(Page.objects.filter(level=1).values_list("incident_id", flat=True)) == opened
    with django_capture_on_commit_callbacks(execute=True):
        services.ingest_alertmanager(am, notification(*firing(5)))  # repeats page nobody
    assert Page.objects.count() == 5
    assert set(state.read_live(opened)) == set(opened)
    resolved = [am_alert(f"{n:04x}", status="resolved") for n in range(5)]
    with django_capture_on_commit_callbacks(execute=True):
        services.ingest_alertmanager(am, notification(*resolved))
    assert sorted(counts.resolved_ids) == opened
    assert state.read_live(opened) == {}  # paging forgot them: nothing more is due


def test_an_unrouted_service_records_nobody_paged_on_each_new_incident(
    web: Service, redis: Redis
) -> None:
    services.ingest_alertmanager(per_alert(web), notification(*firing(3)))
    for incident in Incident.objects.all():
        kinds = list(incident.timeline.order_by("pk").values_list("kind", flat=True))
        assert kinds == [EventKind.OPENED, EventKind.PAGED]


def at_once(am: Integration, body: AmNotification) -> list[list[str]]:
    """Deliver ``body`` twice at the same moment, each on its own connection."""
    barrier = threading.Barrier(2)
    results: list[list[str]] = []

    def deliver() -> None:
        try:
            barrier.wait()
            results.append([o.action for o in services.ingest_alertmanager(am, body)])
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.mark.django_db(transaction=True)
def test_two_identical_notifications_at_once_open_each_incident_once(
    web: Service, redis: Redis
) -> None:
    """An Alertmanager HA pair delivers every notification twice, at once."""
    am = per_alert(web)
    for round_ in range(3):
        results = at_once(am, notification(*firing(100, start=round_ * 100)))
        assert len(results) == 2
        assert sorted(results[0] + results[1]) == ["joined"] * 100 + ["opened"] * 100
    assert Incident.objects.count() == 300
    assert Incident.objects.values("dedup_key").distinct().count() == 300
    for incident in Incident.objects.all():
        kinds = sorted(incident.timeline.values_list("kind", flat=True))
        assert kinds == sorted([EventKind.OPENED, EventKind.PAGED, EventKind.ALERT])
    assert Alert.objects.count() == 300
    # The storm ends: both deliveries of the resolve, at once, resolve each once.
    resolved = [am_alert(f"{n:04x}", status="resolved") for n in range(300)]
    results = at_once(am, notification(*resolved))
    assert sorted(results[0] + results[1]) == ["dropped"] * 300 + ["resolved"] * 300
    assert not Incident.objects.exclude(status=Status.RESOLVED).exists()
    for incident in Incident.objects.all():
        assert incident.timeline.filter(kind=EventKind.RESOLVED).count() == 1


def test_the_dashboard_shows_a_bulk_notifications_incidents_at_once(
    web: Service, redis: Redis, alice_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """Bulk inserts send no save signals: the read model must still hear of
    them, or every responder's cached list would hide the new incidents."""
    bulk = per_alert(web)
    assert "All clear" in alice_client.get("/").content.decode()  # the empty list is cached
    with django_capture_on_commit_callbacks(execute=True):
        services.ingest_alertmanager(bulk, notification(*firing(3)))
    assert Incident.objects.filter(service=web).count() == 3
    page = alice_client.get("/").content.decode()
    assert "All clear" not in page
    assert page.count('data-incident="') == 3

    with django_capture_on_commit_callbacks(execute=True):
        services.ingest_alertmanager(
            bulk,
            notification(*[{**alert, "status": "resolved"} for alert in firing(3)]),
        )
    assert "All clear" in alice_client.get("/").content.decode()
