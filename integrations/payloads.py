"""Parsing and validating what monitoring sends: Alertmanager webhook
notifications (version 4), Grafana alerting's webhook (Alertmanager's body,
version 1, with Grafana's fields), PagerDuty Events API v2 events and change
events.

Parsers never raise on bad input: they return every problem they found as a
readable message naming the field, so a sender learns all that is wrong at
once, and the caller answers 400 before anything is written.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from incidents.models import Severity

# Common severity words (Alertmanager label values, legacy exports) mapped to
# triage's severities. Anything else falls back to the integration's default.
_SEVERITY_WORDS = {
    Severity.CRITICAL: "critical crit fatal emergency page alert p1 sev1 sev-1 1",
    Severity.ERROR: "error err high major p2 sev2 sev-2 2",
    Severity.WARNING: "warning warn medium minor p3 sev3 sev-3 3",
    Severity.INFO: "info informational low notice none debug p4 p5 sev4 sev-4 4",
}
SEVERITY_ALIASES: dict[str, str] = {
    word: severity for severity, words in _SEVERITY_WORDS.items() for word in words.split()
}


def severity_from(value: object, default: str) -> str:
    if not isinstance(value, str):
        return default
    return SEVERITY_ALIASES.get(value.strip().lower(), default)


def parse_time(value: str) -> datetime | None:
    """An ISO 8601 time, aware (naive means UTC); Go's zero time means none.

    Alertmanager writes nanoseconds and ``Z``; Python keeps microseconds.
    """
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if parsed.year <= 1:
        return None
    return parsed


class _Errors:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, message: str) -> None:
        self.messages.append(message)

    def string(self, data: dict[str, Any], key: str, where: str, *, required: bool) -> str:
        value = data.get(key)
        if value is None or (required and value == ""):
            if required:
                self.add(f"'{where}' is missing or blank")
            return ""
        if not isinstance(value, str):
            self.add(f"'{where}' must be a string")
            return ""
        return value

    def string_map(self, data: dict[str, Any], key: str, where: str) -> dict[str, str]:
        value = data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            self.add(f"'{where}' must be an object of string values")
            return {}
        return value

    def time(self, data: dict[str, Any], key: str, where: str) -> datetime | None:
        value = data.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            self.add(f"'{where}' must be an ISO 8601 time string")
            return None
        try:
            return parse_time(value)
        except ValueError:
            self.add(f"'{where}' is not an ISO 8601 time: {value[:40]!r}")
            return None


# --- Alertmanager ----------------------------------------------------------

AM_STATUSES = ("firing", "resolved")
MAX_ALERTS = 5000


@dataclass(frozen=True)
class AmAlert:
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime | None
    ends_at: datetime | None
    generator_url: str
    fingerprint: str
    # Grafana only: its links (dashboard, panel, silence, image; http(s) only)
    # and the query values that fired the alert.
    links: dict[str, str] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    value_string: str = ""

    @property
    def firing(self) -> bool:
        return self.status == "firing"

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "") or self.fingerprint


@dataclass(frozen=True)
class AmNotification:
    status: str
    receiver: str
    group_key: str
    truncated_alerts: int
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    external_url: str
    alerts: list[AmAlert] = field(default_factory=list)
    grafana: GrafanaFields | None = None  # set for Grafana's webhook


@dataclass(frozen=True)
class GrafanaFields:
    """Grafana's additions to the notification (its docs mark title, state and
    message as to be deprecated; they are kept for the timeline only)."""

    org_id: int | None
    title: str
    state: str
    message: str


def _fingerprint_of(labels: dict[str, str]) -> str:
    """Alertmanager always sends a fingerprint; other senders of this shape may
    not, and an alert is identified by its label set anyway."""
    canonical = json.dumps(labels, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# Grafana's per-alert URL fields, and the names triage shows them under.
GRAFANA_LINKS = {
    "dashboardURL": "dashboard",
    "panelURL": "panel",
    "silenceURL": "silence",
    "imageURL": "image",
}


def web_url(value: str) -> bool:
    """An absolute http(s) URL: the only kind rendered as a link."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _grafana_extras(
    errors: _Errors, raw: dict[str, Any], where: str
) -> tuple[dict[str, str], dict[str, float], str]:
    links: dict[str, str] = {}
    for key, name in GRAFANA_LINKS.items():
        url = errors.string(raw, key, f"{where}.{key}", required=False)
        # Anything but an absolute http(s) URL (an unset root_url gives
        # relative ones) is dropped rather than refused: the alert still counts.
        if url and web_url(url):
            links[name] = url
    values = raw.get("values")
    numbers: dict[str, float] = {}
    if values is not None:  # Go writes a nil map as null
        if not isinstance(values, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values.values()
        ):
            errors.add(f"'{where}.values' must be an object of numbers")
        else:
            numbers = values
    value_string = errors.string(raw, "valueString", f"{where}.valueString", required=False)
    return links, numbers, value_string


def _am_alert(errors: _Errors, raw: object, index: int, *, grafana: bool = False) -> AmAlert | None:
    where = f"alerts[{index}]"
    if not isinstance(raw, dict):
        errors.add(f"'{where}' must be an object")
        return None
    before = len(errors.messages)
    status = errors.string(raw, "status", f"{where}.status", required=True)
    if status and status not in AM_STATUSES:
        errors.add(f"'{where}.status' must be firing or resolved, not {status[:40]!r}")
    labels = errors.string_map(raw, "labels", f"{where}.labels")
    annotations = errors.string_map(raw, "annotations", f"{where}.annotations")
    starts_at = errors.time(raw, "startsAt", f"{where}.startsAt")
    ends_at = errors.time(raw, "endsAt", f"{where}.endsAt")
    generator_url = errors.string(raw, "generatorURL", f"{where}.generatorURL", required=False)
    fingerprint = errors.string(raw, "fingerprint", f"{where}.fingerprint", required=False)
    if len(fingerprint) > 64:
        errors.add(f"'{where}.fingerprint' is longer than 64 characters")
    links, values, value_string = _grafana_extras(errors, raw, where) if grafana else ({}, {}, "")
    if len(errors.messages) > before:
        return None
    return AmAlert(
        status=status,
        labels=labels,
        annotations=annotations,
        starts_at=starts_at,
        ends_at=ends_at,
        generator_url=generator_url,
        fingerprint=fingerprint or _fingerprint_of(labels),
        links=links,
        values=values,
        value_string=value_string,
    )


def _version(errors: _Errors, data: dict[str, Any], *, grafana: bool) -> None:
    version = data.get("version")
    if version is None:
        return
    if grafana and version != "1":
        errors.add(
            f"'version' {str(version)[:20]!r} is not Grafana's webhook (\"1\"); "
            "Alertmanager sends to an Alertmanager integration"
        )
    elif not grafana and version == "1" and "orgId" in data:
        errors.add(
            'This is Grafana alerting\'s webhook (version "1"): create a Grafana integration '
            "and send to /integrations/grafana"
        )
    elif not grafana and version != "4":
        errors.add(f"'version' {str(version)[:20]!r} is not supported (only \"4\")")


def _grafana_fields(errors: _Errors, data: dict[str, Any]) -> GrafanaFields:
    org_id = data.get("orgId")
    if org_id is not None and (
        not isinstance(org_id, int) or isinstance(org_id, bool) or not 0 <= org_id < 2**63
    ):
        errors.add("'orgId' must be a non-negative integer")
        org_id = None
    return GrafanaFields(
        org_id=org_id,
        title=errors.string(data, "title", "title", required=False),
        state=errors.string(data, "state", "state", required=False),
        message=errors.string(data, "message", "message", required=False),
    )


def parse_alertmanager(
    data: dict[str, Any], *, need_group_key: bool, grafana: bool = False
) -> AmNotification | list[str]:
    """A webhook notification, or the list of what is wrong with it.

    ``grafana``: Grafana alerting's webhook — Alertmanager's version 4 body
    under version "1", with Grafana's fields (orgId, title, state, message;
    per alert silenceURL, dashboardURL, panelURL, imageURL, values,
    valueString).
    """
    errors = _Errors()
    _version(errors, data, grafana=grafana)
    extra = _grafana_fields(errors, data) if grafana else None
    status = errors.string(data, "status", "status", required=True)
    if status and status not in AM_STATUSES:
        errors.add(f"'status' must be firing or resolved, not {status[:40]!r}")
    group_key = errors.string(data, "groupKey", "groupKey", required=need_group_key)
    receiver = errors.string(data, "receiver", "receiver", required=False)
    external_url = errors.string(data, "externalURL", "externalURL", required=False)
    truncated = data.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        errors.add("'truncatedAlerts' must be a non-negative integer")
        truncated = 0
    group_labels = errors.string_map(data, "groupLabels", "groupLabels")
    common_labels = errors.string_map(data, "commonLabels", "commonLabels")
    common_annotations = errors.string_map(data, "commonAnnotations", "commonAnnotations")
    raw_alerts = data.get("alerts")
    alerts: list[AmAlert] = []
    if not isinstance(raw_alerts, list) or not raw_alerts:
        errors.add("'alerts' must be a non-empty list")
    elif len(raw_alerts) > MAX_ALERTS:
        errors.add(f"'alerts' has more than {MAX_ALERTS} alerts")
    else:
        for index, raw in enumerate(raw_alerts):
            alert = _am_alert(errors, raw, index, grafana=grafana)
            if alert is not None:
                alerts.append(alert)
    if errors.messages:
        return errors.messages
    return AmNotification(
        status=status,
        receiver=receiver,
        group_key=group_key,
        truncated_alerts=truncated,
        group_labels=group_labels,
        common_labels=common_labels,
        common_annotations=common_annotations,
        external_url=external_url,
        alerts=alerts,
        grafana=extra,
    )


# --- Events API v2 ----------------------------------------------------------

EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
MAX_DEDUP_KEY = 255
MAX_SUMMARY = 1024
ROUTING_KEY_LENGTH = 32


@dataclass(frozen=True)
class Event:
    routing_key: str
    action: str
    dedup_key: str  # empty when a trigger left it out
    summary: str = ""
    source: str = ""
    severity: str = ""
    timestamp: datetime | None = None
    component: str = ""
    group: str = ""
    event_class: str = ""
    custom_details: Any = None
    links: list[dict[str, str]] = field(default_factory=list)
    images: list[dict[str, str]] = field(default_factory=list)
    client: str = ""
    client_url: str = ""


def _objects(
    errors: _Errors, data: dict[str, Any], key: str, required: str
) -> list[dict[str, str]]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        errors.add(f"'{key}' must be a list")
        return []
    items: list[dict[str, str]] = []
    for index, item in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(item, dict):
            errors.add(f"'{where}' must be an object")
            continue
        if not isinstance(item.get(required), str) or not item[required]:
            errors.add(f"'{where}.{required}' is missing or blank")
            continue
        items.append({k: v for k, v in item.items() if isinstance(v, str)})
    return items


def parse_event(data: dict[str, Any]) -> Event | list[str]:
    """An Events API v2 event, or the list of what is wrong with it (PagerDuty's wording)."""
    errors = _Errors()
    routing_key = errors.string(data, "routing_key", "routing_key", required=True)
    if routing_key and len(routing_key) != ROUTING_KEY_LENGTH:
        errors.add("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = errors.string(data, "event_action", "event_action", required=True)
    if action and action not in EVENT_ACTIONS:
        errors.add("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
    dedup_key = errors.string(data, "dedup_key", "dedup_key", required=action != "trigger")
    if len(dedup_key) > MAX_DEDUP_KEY:
        errors.add(f"'dedup_key' is longer than {MAX_DEDUP_KEY} characters")
    if action != "trigger":
        if errors.messages:
            return errors.messages
        return Event(routing_key=routing_key, action=action, dedup_key=dedup_key)

    payload = data.get("payload")
    if not isinstance(payload, dict):
        errors.add("'payload' is missing or not an object")
        payload = {}
    summary = errors.string(payload, "summary", "payload.summary", required=True)
    source = errors.string(payload, "source", "payload.source", required=True)
    severity = errors.string(payload, "severity", "payload.severity", required=True)
    if severity and severity not in Severity.values:
        errors.add(
            "'payload.severity' is invalid (must be one of: " + ", ".join(Severity.values) + ")"
        )
    timestamp = errors.time(payload, "timestamp", "payload.timestamp")
    component = errors.string(payload, "component", "payload.component", required=False)
    group = errors.string(payload, "group", "payload.group", required=False)
    event_class = errors.string(payload, "class", "payload.class", required=False)
    links = _objects(errors, data, "links", "href")
    images = _objects(errors, data, "images", "src")
    client = errors.string(data, "client", "client", required=False)
    client_url = errors.string(data, "client_url", "client_url", required=False)
    if errors.messages:
        return errors.messages
    return Event(
        routing_key=routing_key,
        action=action,
        dedup_key=dedup_key,
        summary=summary[:MAX_SUMMARY],
        source=source,
        severity=severity,
        timestamp=timestamp,
        component=component,
        group=group,
        event_class=event_class,
        custom_details=payload.get("custom_details"),
        links=links,
        images=images,
        client=client,
        client_url=client_url,
    )


# --- Change events (Events API v2) ----------------------------------------------

MAX_CHANGE_SOURCE = 255


@dataclass(frozen=True)
class ChangeEvent:
    routing_key: str
    summary: str
    source: str = ""
    timestamp: datetime | None = None
    custom_details: Any = None
    links: list[dict[str, str]] = field(default_factory=list)


def parse_change_event(data: dict[str, Any]) -> ChangeEvent | list[str]:
    """A change event (POST /v2/change/enqueue), or what is wrong with it.

    PagerDuty's rules: routing_key and payload.summary (at most 1024
    characters; longer is cut) are required; payload.source, payload.timestamp,
    payload.custom_details and links are optional. Images are accepted and
    ignored, as PagerDuty's change events do not show them.
    """
    errors = _Errors()
    routing_key = errors.string(data, "routing_key", "routing_key", required=True)
    if routing_key and len(routing_key) != ROUTING_KEY_LENGTH:
        errors.add("Length of 'routing_key' is incorrect (should be 32 characters)")
    payload = data.get("payload")
    if not isinstance(payload, dict):
        errors.add("'payload' is missing or not an object")
        payload = {}
    summary = errors.string(payload, "summary", "payload.summary", required=True)
    source = errors.string(payload, "source", "payload.source", required=False)
    timestamp = errors.time(payload, "timestamp", "payload.timestamp")
    details = payload.get("custom_details")
    if details is not None and not isinstance(details, dict):
        errors.add("'payload.custom_details' must be an object")
    links = _objects(errors, data, "links", "href")
    if errors.messages:
        return errors.messages
    return ChangeEvent(
        routing_key=routing_key,
        summary=summary[:MAX_SUMMARY],  # cut like a trigger's summary
        source=source[:MAX_CHANGE_SOURCE],
        timestamp=timestamp,
        custom_details=details,
        links=[{"href": link["href"], "text": link.get("text", "")} for link in links],
    )
