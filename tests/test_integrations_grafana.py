"""POST /integrations/grafana/<key>: Grafana alerting's webhook contact point
(version "1": Alertmanager's body plus Grafana's fields), with bodies in the
shapes Grafana's webhook-notifier documentation gives."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from django.test import Client
from redis import Redis

from incidents.models import Incident, Service, Status
from integrations.config import snippets
from integrations.keys import NewKey
from integrations.models import Alert
from tests.integration_factories import grafana_body, integration

pytestmark = pytest.mark.django_db

DASHBOARD = "https://grafana.example.org/d/web-latency?orgId=1"
PANEL = "https://grafana.example.org/d/web-latency?orgId=1&viewPanel=4"
IMAGE = "https://grafana.example.org/public/img/attachments/a1b2c3.png"


@pytest.fixture
def grafana(web: Service, redis: Redis) -> NewKey:
    return integration(web, "grafana")


def deliver(client: Client, key: str, body: Any, *, method: str = "post", **headers: str) -> Any:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    path = f"/integrations/grafana/{key}" if key else "/integrations/grafana"
    send = getattr(client, method)
    return send(path, data=data, content_type="application/json", headers=headers)


def test_a_firing_alert_opens_an_incident_with_grafana_s_links(
    client: Client, grafana: NewKey
) -> None:
    response = deliver(client, grafana.raw, grafana_body("01-firing-one-alert"))
    assert response.status_code == 200
    assert response.json()["incidents"][0]["action"] == "opened"
    incident = Incident.objects.get()
    assert incident.title == "p99 latency above 2 s on web-1"
    assert incident.severity == "critical"
    assert incident.source == "grafana"
    assert incident.dedup_key.startswith("grafana:group:")
    assert f"dashboard: {DASHBOARD}" in incident.details
    assert f"panel: {PANEL}" in incident.details
    assert "values: A=2.41, B=1" in incident.details
    assert "Grafana: https://grafana.example.org/" in incident.details
    alert = Alert.objects.get()
    assert alert.links == {
        "dashboard": DASHBOARD,
        "panel": PANEL,
        "silence": grafana_body("01-firing-one-alert")["alerts"][0]["silenceURL"],
        "image": IMAGE,
    }
    opened = incident.timeline.get(kind="opened")
    assert opened.data["grafana"] == {
        "org_id": 1,
        "state": "alerting",
        "title": "[FIRING:1] HighLatency web (web-1 critical)",
    }


def test_a_grouped_notification_joins_one_incident_and_resolves_when_all_have(
    client: Client, grafana: NewKey
) -> None:
    deliver(client, grafana.raw, grafana_body("01-firing-one-alert"))
    grouped = deliver(client, grafana.raw, grafana_body("02-firing-two-alerts"))
    assert grouped.json()["incidents"][0]["action"] == "joined"
    incident = Incident.objects.get()
    assert incident.alerts.count() == 2
    resolved = deliver(client, grafana.raw, grafana_body("03-all-resolved"))
    assert resolved.status_code == 200
    assert resolved.json()["incidents"][0]["action"] == "resolved"
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED
    assert incident.timeline.filter(message="All alerts resolved (Grafana).").exists()
    # The group firing again opens a new incident, as with Alertmanager.
    deliver(client, grafana.raw, grafana_body("02-firing-two-alerts"))
    assert Incident.objects.filter(status=Status.TRIGGERED).count() == 1


def test_a_grouped_first_notification_takes_the_most_severe_alert(
    client: Client, grafana: NewKey
) -> None:
    body = grafana_body("02-firing-two-alerts")
    body["alerts"].reverse()  # the warning first
    deliver(client, grafana.raw, body)
    assert Incident.objects.get().severity == "critical"


def test_no_data_opens_an_incident_saying_so_for_its_rule(client: Client, grafana: NewKey) -> None:
    deliver(client, grafana.raw, grafana_body("01-firing-one-alert"))
    response = deliver(client, grafana.raw, grafana_body("04-no-data"))
    assert response.json()["incidents"][0]["action"] == "opened"
    incident = Incident.objects.get(title__startswith="No data")
    # Not the rule's own summary: that describes a condition nobody measured.
    assert incident.title == "No data: Checkout error rate"
    assert incident.severity == "warning"
    assert Incident.objects.count() == 2  # its own group, not the latency incident
    resolved = grafana_body("04-no-data")
    resolved["status"] = resolved["alerts"][0]["status"] = "resolved"
    resolved["alerts"][0]["endsAt"] = "2026-11-29T22:10:10+01:00"
    deliver(client, grafana.raw, resolved)
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED


def test_the_incident_page_links_to_grafana_but_only_over_http(
    client: Client, alice_client: Client, grafana: NewKey
) -> None:
    body = grafana_body("02-firing-two-alerts")
    body["alerts"][1]["dashboardURL"] = "javascript:alert(document.cookie)"
    body["alerts"][1]["panelURL"] = "/d/relative-because-root_url-is-unset"
    body["alerts"][1]["imageURL"] = "http://[not-a-host"
    deliver(client, grafana.raw, body)
    incident = Incident.objects.get()
    page = alice_client.get(f"/incidents/{incident.pk}").content.decode()
    assert "Links from Grafana" in page
    assert f'<a href="{DASHBOARD}"' in page
    assert f'<a href="{PANEL.replace("&", "&amp;")}"' in page
    assert f'<a href="{IMAGE}"' in page
    assert ">Silence</a>" in page
    assert "javascript:" not in page
    links = page.split("<h2>Links from Grafana</h2>")[1]
    assert "relative-because-root_url-is-unset" not in links
    assert "not-a-host" not in links


def test_the_contact_point_s_authorization_header_and_put_work(
    client: Client, grafana: NewKey
) -> None:
    body = grafana_body("01-firing-one-alert")
    response = deliver(client, "", body, method="put", Authorization=f"Bearer {grafana.raw}")
    assert response.status_code == 200
    assert Incident.objects.count() == 1
    assert deliver(client, "", body).status_code == 401


def test_keys_and_bodies_of_the_other_webhook_are_refused_clearly(
    client: Client, grafana: NewKey, web: Service
) -> None:
    alertmanager = integration(web, "alertmanager")
    wrong_key = deliver(client, alertmanager.raw, grafana_body("01-firing-one-alert"))
    assert wrong_key.status_code == 403
    assert "Grafana" in wrong_key.json()["detail"]
    to_alertmanager = client.post(
        f"/integrations/alertmanager/{alertmanager.raw}",
        data=json.dumps(grafana_body("01-firing-one-alert")),
        content_type="application/json",
    )
    assert to_alertmanager.status_code == 400
    assert "create a Grafana integration" in to_alertmanager.json()["detail"]
    alertmanager_body = grafana_body("01-firing-one-alert") | {"version": "4"}
    refused = deliver(client, grafana.raw, alertmanager_body)
    assert refused.status_code == 400
    assert "is not Grafana's webhook" in refused.json()["detail"]
    assert not Incident.objects.exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"orgId": "1"}, "'orgId' must be a non-negative integer"),
        ({"title": 5}, "'title' must be a string"),
        (
            {"alerts": [{"status": "firing", "values": {"A": "high"}}]},
            "must be an object of numbers",
        ),
        ({"alerts": [{"status": "firing", "dashboardURL": 7}]}, "'alerts[0].dashboardURL'"),
    ],
)
def test_a_malformed_notification_is_a_400_that_writes_nothing(
    client: Client, grafana: NewKey, change: dict[str, Any], message: str
) -> None:
    response = deliver(client, grafana.raw, grafana_body("01-firing-one-alert") | change)
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert not Incident.objects.exists()
    assert not Alert.objects.exists()


def test_fingerprint_grouping_opens_one_incident_per_alert(client: Client, web: Service) -> None:
    key = integration(web, "grafana", grouping="fingerprint")
    deliver(client, key.raw, grafana_body("02-firing-two-alerts"))
    keys = sorted(Incident.objects.values_list("dedup_key", flat=True))
    assert keys == ["grafana:alert:0c9e2b7a41d35f88", "grafana:alert:7d3c1a9e0b2f4c51"]


def test_the_integrations_page_gives_ready_to_paste_contact_point_settings(
    web: Service, settings: Any, redis: Redis
) -> None:
    settings.BASE_URL = "https://triage.example.org"
    created = integration(web, "grafana")
    form, provisioning, in_url = snippets(created.integration, created.raw)
    assert (
        "URL:                                   https://triage.example.org/integrations/grafana"
        in form.text
    )
    assert f"Authorization Header - Credentials:    {created.raw}" in form.text
    assert "Bearer" in form.text
    contact_point = yaml.safe_load(provisioning.text)["contactPoints"][0]["receivers"][0]
    assert contact_point["type"] == "webhook"
    assert contact_point["disableResolveMessage"] is False
    assert contact_point["settings"] == {
        "url": "https://triage.example.org/integrations/grafana",
        "httpMethod": "POST",
        "authorization_scheme": "Bearer",
        "authorization_credentials": created.raw,
    }
    assert in_url.text == f"https://triage.example.org/integrations/grafana/{created.raw}"
    later = "".join(snippet.text for snippet in snippets(created.integration))
    assert created.raw not in later
    assert created.integration.key_prefix in later


def test_staff_create_a_grafana_integration_and_see_its_settings(
    alice_client: Client, root: Any, web: Service, redis: Redis
) -> None:
    staff = Client()
    staff.force_login(root)
    response = staff.post(
        "/integrations",
        {
            "service": web.pk,
            "kind": "grafana",
            "name": "Grafana prod",
            "grouping": "group",
            "severity_label": "severity",
            "default_severity": "error",
            "rate_limit_per_minute": 120,
            "heartbeat_timeout_seconds": 300,
        },
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Authorization Header - Credentials" in page
    assert "contactPoints:" in page
    listed = alice_client.get("/integrations").content.decode()
    assert "Grafana alerting (webhook contact point)" in listed
