"""A real Alertmanager process notifying a real triage server (live_server).

Alerts are posted to Alertmanager's own API; Alertmanager groups them and
calls triage's webhook, exactly as in production.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pytest_django.live_server_helper import LiveServer
from redis import Redis

from incidents.models import Incident, Service, Status
from integrations.keys import NewKey
from integrations.models import Alert, AlertStatus
from tests.integration_factories import integration
from tests.processes import free_port, http_status, stop, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LABELS = {"alertname": "DiskFull", "job": "node"}


@pytest.fixture
def am_key(web: Service, redis: Redis) -> NewKey:
    return integration(web, "alertmanager")


@pytest.fixture
def alertmanager(tmp_path: Path, live_server: LiveServer, am_key: NewKey) -> Iterator[str]:
    binary = shutil.which("prometheus-alertmanager")
    assert binary, "prometheus-alertmanager is missing: apt-get install it (.ci/run does)"
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        f"""
route:
  receiver: triage
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: triage
    webhook_configs:
      - url: "{live_server.url}/integrations/alertmanager/{am_key.raw}"
        send_resolved: true
"""
    )
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_status(f"{base}/-/ready", 0.5) == 200, 15, "Alertmanager ready")
        yield base
    finally:
        stop(process)


def post_alerts(base: str, alerts: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        f"{base}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def alert(instance: str, severity: str, *, resolved: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "labels": {**LABELS, "instance": instance, "severity": severity},
        "annotations": {"summary": f"Disk almost full on {instance}"},
        "generatorURL": "http://prometheus.example:9090/graph",
    }
    if resolved:
        body["endsAt"] = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    return body


def firing_count() -> int:
    return Alert.objects.filter(status=AlertStatus.FIRING).count()


def test_alertmanager_opens_joins_and_resolves_one_incident_per_group(alertmanager: str) -> None:
    post_alerts(alertmanager, [alert("db1", "warning")])
    wait_for(lambda: Incident.objects.exists(), 10, "the first notification")
    incident = Incident.objects.get()
    assert incident.title == "Disk almost full on db1"
    assert incident.source == "alertmanager"

    post_alerts(alertmanager, [alert("db2", "critical")])
    wait_for(lambda: firing_count() == 2, 10, "the second alert joined the group")
    assert Incident.objects.count() == 1

    post_alerts(alertmanager, [alert("db1", "warning", resolved=True)])
    wait_for(lambda: firing_count() == 1, 10, "db1 resolved")
    incident.refresh_from_db()
    assert incident.status == Status.TRIGGERED  # db2 still fires

    post_alerts(alertmanager, [alert("db2", "critical", resolved=True)])
    wait_for(lambda: Incident.objects.filter(status=Status.RESOLVED).exists(), 10, "all resolved")
    assert Incident.objects.count() == 1
    assert not Alert.objects.filter(status=AlertStatus.FIRING).exists()
