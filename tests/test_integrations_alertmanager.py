"""POST /integrations/alertmanager/<key>: Alertmanager's webhook (version 4),
with bodies recorded from a real Alertmanager and built ones."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from redis import Redis

from incidents.models import EventKind, Incident, Service, Status
from integrations.keys import NewKey
from integrations.models import Alert, AlertStatus
from tests.integration_factories import am_alert, am_notification, integration, recorded

pytestmark = pytest.mark.django_db


@pytest.fixture
def am(web: Service, redis: Redis) -> NewKey:
    return integration(web, "alertmanager")


def deliver(client: Client, key: str, body: Any, **headers: str) -> Any:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    path = f"/integrations/alertmanager/{key}" if key else "/integrations/alertmanager"
    return client.post(path, data=data, content_type="application/json", headers=headers)


def test_a_firing_group_opens_an_incident_titled_by_its_summary(client: Client, am: NewKey) -> None:
    response = deliver(client, am.raw, recorded("01-firing-one-alert"))
    assert response.status_code == 200
    assert response.json()["incidents"][0]["action"] == "opened"
    incident = Incident.objects.get()
    assert incident.title == "Disk almost full on db1"
    assert incident.severity == "critical"
    assert incident.source == "alertmanager"
    assert incident.dedup_key.startswith("alertmanager:group:")
    assert "/var is 95% full" in incident.details
    assert "http://prometheus:9090/graph" in incident.details
    alert = Alert.objects.get()
    assert (alert.fingerprint, alert.status) == ("1751650d45bf7d6b", AlertStatus.FIRING)
    assert alert.starts_at is not None
    assert alert.ends_at is None  # Go's zero time


def test_the_whole_recorded_lifecycle_resolves_only_when_every_alert_has(
    client: Client, am: NewKey
) -> None:
    deliver(client, am.raw, recorded("01-firing-one-alert"))
    deliver(client, am.raw, recorded("02-firing-two-alerts"))
    incident = Incident.objects.get()
    assert incident.alerts.filter(status=AlertStatus.FIRING).count() == 2
    assert incident.timeline.filter(kind=EventKind.ALERT).count() == 1

    deliver(client, am.raw, recorded("03-one-of-two-resolved"))
    incident.refresh_from_db()
    assert incident.status == Status.TRIGGERED
    assert incident.alerts.filter(status=AlertStatus.FIRING).count() == 1

    response = deliver(client, am.raw, recorded("04-all-resolved"))
    assert response.json()["incidents"][0]["action"] == "resolved"
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED
    assert Incident.objects.count() == 1
    assert not incident.alerts.filter(status=AlertStatus.FIRING).exists()


def test_repeats_add_timeline_entries_never_incidents(client: Client, am: NewKey) -> None:
    for _ in range(4):
        assert deliver(client, am.raw, recorded("01-firing-one-alert")).status_code == 200
    incident = Incident.objects.get()
    assert incident.timeline.filter(kind=EventKind.ALERT).count() == 3
    assert Alert.objects.count() == 1


def test_a_group_firing_again_after_resolving_opens_a_new_incident(
    client: Client, am: NewKey
) -> None:
    deliver(client, am.raw, recorded("01-firing-one-alert"))
    deliver(client, am.raw, am_notification(am_alert("1751650d45bf7d6b", status="resolved")))
    deliver(client, am.raw, recorded("01-firing-one-alert"))
    assert list(Incident.objects.order_by("pk").values_list("status", flat=True)) == [
        "resolved",
        "triggered",
    ]


def test_a_resolved_notification_with_no_open_incident_is_dropped(
    client: Client, am: NewKey
) -> None:
    response = deliver(client, am.raw, recorded("04-all-resolved"))
    assert response.status_code == 200
    assert response.json()["incidents"][0]["action"] == "dropped"
    assert Incident.objects.count() == 0


def test_a_resolve_that_leaves_another_tracked_alert_firing_keeps_the_incident_open(
    client: Client, am: NewKey
) -> None:
    deliver(client, am.raw, am_notification(am_alert("aa"), am_alert("bb")))
    deliver(client, am.raw, am_notification(am_alert("aa", status="resolved")))
    incident = Incident.objects.get()
    assert incident.status == Status.TRIGGERED
    note = incident.timeline.get(kind=EventKind.NOTE)
    assert "still firing: DiskFull" in note.message


def test_fingerprint_mode_opens_one_incident_per_alert(
    client: Client, web: Service, redis: Redis
) -> None:
    per_alert = integration(web, "alertmanager", grouping="fingerprint")
    response = deliver(client, per_alert.raw, recorded("02-firing-two-alerts"))
    assert [o["action"] for o in response.json()["incidents"]] == ["opened", "opened"]
    titles = set(Incident.objects.values_list("title", flat=True))
    assert titles == {"Disk almost full on db1", "Disk almost full on db2"}
    severities = dict(Incident.objects.values_list("title", "severity"))
    assert severities["Disk almost full on db2"] == "warning"

    deliver(client, per_alert.raw, recorded("03-one-of-two-resolved"))
    statuses = dict(Incident.objects.values_list("title", "status"))
    assert statuses == {
        "Disk almost full on db1": "resolved",
        "Disk almost full on db2": "triggered",
    }


def test_severity_comes_from_the_configured_label_with_a_default(
    client: Client, web: Service, redis: Redis
) -> None:
    custom = integration(web, "alertmanager", severity_label="priority", default_severity="info")
    deliver(client, custom.raw, am_notification(am_alert("aa", priority="P2"), group_key="g1"))
    deliver(
        client, custom.raw, am_notification(am_alert("bb", severity="critical"), group_key="g2")
    )
    deliver(client, custom.raw, am_notification(am_alert("cc", priority="weird"), group_key="g3"))
    assert list(Incident.objects.order_by("pk").values_list("severity", flat=True)) == [
        "error",
        "info",
        "info",
    ]


def test_a_group_takes_the_most_severe_of_its_alerts(client: Client, am: NewKey) -> None:
    deliver(
        client,
        am.raw,
        am_notification(am_alert("aa", severity="warning"), am_alert("bb", severity="critical")),
    )
    assert Incident.objects.get().severity == "critical"


def test_the_title_falls_back_to_the_alert_name(client: Client, am: NewKey) -> None:
    deliver(client, am.raw, am_notification(am_alert("aa", alertname="NodeDown")))
    assert Incident.objects.get().title == "NodeDown"


def test_the_key_may_come_as_a_bearer_token(client: Client, am: NewKey) -> None:
    response = deliver(
        client, "", recorded("01-firing-one-alert"), Authorization=f"Bearer {am.raw}"
    )
    assert response.status_code == 200
    assert Incident.objects.count() == 1


@pytest.mark.parametrize("key", ["0" * 32, "not-a-key", ""])
def test_an_unknown_key_is_a_401(client: Client, am: NewKey, key: str) -> None:
    response = deliver(client, key, recorded("01-firing-one-alert"))
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert Incident.objects.count() == 0


def test_a_key_of_another_kind_is_a_403(client: Client, web: Service, redis: Redis) -> None:
    events = integration(web, "events_v2")
    response = deliver(client, events.raw, recorded("01-firing-one-alert"))
    assert response.status_code == 403
    assert "Events API v2" in response.json()["detail"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.update(version="3"), "'version' '3' is not supported"),
        (lambda b: b.update(status="burning"), "'status' must be firing or resolved"),
        (lambda b: b.pop("groupKey"), "'groupKey' is missing or blank"),
        (lambda b: b.update(alerts=[]), "'alerts' must be a non-empty list"),
        (lambda b: b.update(alerts="many"), "'alerts' must be a non-empty list"),
        (lambda b: b["alerts"][0].update(status="meh"), "'alerts[0].status' must be firing"),
        (lambda b: b["alerts"][0].update(labels={"x": 1}), "'alerts[0].labels' must be an object"),
        (lambda b: b["alerts"][0].update(startsAt="soon"), "'alerts[0].startsAt' is not an ISO"),
        (lambda b: b["alerts"][0].update(fingerprint="f" * 65), "longer than 64"),
        (lambda b: b.update(truncatedAlerts=-1), "'truncatedAlerts' must be a non-negative"),
        (lambda b: b["alerts"].append("x"), "'alerts[1]' must be an object"),
    ],
)
def test_a_malformed_notification_is_a_400_saying_what_is_wrong(
    client: Client, am: NewKey, mutate: Any, message: str
) -> None:
    body = recorded("01-firing-one-alert")
    mutate(body)
    response = deliver(client, am.raw, body)
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert Incident.objects.count() == 0


def test_alerts_without_a_fingerprint_are_identified_by_their_labels(
    client: Client, am: NewKey
) -> None:
    alert = am_alert("x")
    del alert["fingerprint"]
    deliver(client, am.raw, am_notification(alert))
    deliver(client, am.raw, am_notification(alert))
    assert Alert.objects.count() == 1
    assert len(Alert.objects.get().fingerprint) == 16


@pytest.mark.parametrize("body", ["{nope", "[]"])
def test_malformed_json_is_a_400(client: Client, am: NewKey, body: str) -> None:
    assert deliver(client, am.raw, body).status_code == 400


def test_an_oversized_body_is_a_413(client: Client, am: NewKey) -> None:
    body = recorded("01-firing-one-alert")
    body["commonAnnotations"]["description"] = "x" * 600_000
    assert deliver(client, am.raw, body).status_code == 413
    assert Incident.objects.count() == 0


def test_over_the_rate_limit_alertmanager_gets_429_and_retries_later(
    client: Client, web: Service, redis: Redis, one_window: None
) -> None:
    limited = integration(web, "alertmanager", rate_limit_per_minute=2)
    statuses = [
        deliver(client, limited.raw, recorded("01-firing-one-alert")).status_code for _ in range(3)
    ]
    assert statuses == [200, 200, 429]


def test_the_key_never_reaches_the_access_log(
    client: Client, am: NewKey, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="triage.access"):
        deliver(client, am.raw, recorded("01-firing-one-alert"))
    assert caplog.records, "the access log wrote nothing"
    assert all(am.raw not in record.getMessage() for record in caplog.records)
    assert all(am.raw not in str(getattr(record, "path", "")) for record in caplog.records)
