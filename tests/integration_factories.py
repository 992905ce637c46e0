"""Builders for the integrations tests: keys, Alertmanager notifications, events."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from incidents.models import Service
from integrations.keys import NewKey, create_integration

FIXTURES = Path(__file__).parent / "fixtures" / "alertmanager"
GRAFANA_FIXTURES = Path(__file__).parent / "fixtures" / "grafana"


def integration(service: Service, kind: str = "events_v2", **options: Any) -> NewKey:
    """An active integration of this kind on the service, with its raw key."""
    name = options.pop("name", f"{kind} for {service.slug}")
    return create_integration(service=service, kind=kind, name=name, **options)


def recorded(name: str) -> dict[str, Any]:
    """A webhook body recorded from prometheus-alertmanager 0.25."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def grafana_body(name: str) -> dict[str, Any]:
    """A Grafana alerting webhook body (version "1") in the shape Grafana's
    webhook-notifier documentation gives, with Grafana's own fields."""
    data: dict[str, Any] = json.loads((GRAFANA_FIXTURES / f"{name}.json").read_text())
    return data


def am_alert(
    fingerprint: str,
    *,
    status: str = "firing",
    alertname: str = "DiskFull",
    summary: str | None = None,
    **labels: str,
) -> dict[str, Any]:
    annotations = {"summary": summary} if summary else {}
    return {
        "status": status,
        "labels": {"alertname": alertname, **labels},
        "annotations": annotations,
        "startsAt": "2026-01-01T10:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-01-01T10:05:00Z",
        "generatorURL": "http://prometheus.example:9090/graph",
        "fingerprint": fingerprint,
    }


def am_notification(
    *alerts: dict[str, Any], group_key: str = '{}:{alertname="DiskFull"}'
) -> dict[str, Any]:
    firing = any(alert["status"] == "firing" for alert in alerts)
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "triage",
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {"alertname": "DiskFull"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [copy.deepcopy(alert) for alert in alerts],
    }


def trigger(key: str, **fields: Any) -> dict[str, Any]:
    """An Events API v2 trigger; payload fields may be overridden with payload=."""
    payload = {"summary": "Disk 95% full on db1", "source": "db1", "severity": "critical"}
    payload.update(fields.pop("payload", {}))
    return {"routing_key": key, "event_action": "trigger", "payload": payload, **fields}
