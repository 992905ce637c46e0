"""What monitoring events do to incidents. Every change goes through
``incidents.services``; this module decides which change an event means.

- Alertmanager and Grafana alerting (the same webhook body): firing alerts open
  or join the incident of their group (or of each alert, per the
  integration's grouping); every alert is tracked, and the incident resolves
  once all of its alerts have resolved.
- Events API v2: PagerDuty's semantics — at most one open incident per dedup
  key; acknowledge/resolve for a key without an open incident are dropped.
- Change events: recorded on the service, never an incident.
- Heartbeats: a ping pushes the deadline on and resolves the heartbeat's
  incident; the periodic check opens one for each missed deadline.
- Email: a message opens or joins the incident of its dedup key (the
  subject by default); a resolving subject resolves it when configured.

Each entry point is one transaction: a failure half-way writes nothing, and the
sender (Alertmanager retries) can deliver again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from incidents import hotpath, storms
from incidents import services as incident_services
from incidents.models import (
    OPEN_STATUSES,
    Incident,
    JoinedRequest,
    Service,
    Severity,
    Source,
    Status,
)
from incidents.services import Alerting
from incidents.timeline import BULK_BATCH
from integrations.mail import Mail, dedup_text, is_resolution
from integrations.models import Alert, AlertStatus, ChangeEvent, Grouping, Integration, Kind
from integrations.payloads import AmAlert, AmNotification, Event, severity_from
from integrations.payloads import ChangeEvent as ChangePayload

logger = logging.getLogger(__name__)

TITLE_LENGTH = 200  # Incident.title's max_length


@dataclass(frozen=True)
class Outcome:
    # opened | joined | duplicate | acknowledged | resolved | updated | dropped | ok
    action: str
    dedup_key: str
    incident_id: int | None = None


def _one_line(text: str, limit: int = TITLE_LENGTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _open_incident_for_update(service: Service, dedup_key: str) -> Incident | None:
    """The open incident with this dedup key, locked until the transaction ends.

    Locking serialises everything done to one incident by concurrent deliveries:
    a resolve waits for a join in progress, and a trigger arriving after a
    resolve committed no longer sees the incident and opens a new one.
    """
    return (
        Incident.objects.select_for_update()
        .filter(service=service, dedup_key=dedup_key, status__in=OPEN_STATUSES)
        .first()
    )


# --- Alertmanager ----------------------------------------------------------


# Grafana's alerts for a rule that could not be evaluated: their alertname
# replaces the rule's, which moves to the rulename label.
GRAFANA_STATE_ALERTS = {"DatasourceNoData": "No data", "DatasourceError": "Query error"}


def _sender(integration: Integration) -> str:
    return "Grafana" if integration.kind == Kind.GRAFANA else "Alertmanager"


def _group_dedup_key(integration: Integration, group_key: str) -> str:
    # groupKey strings grow with the route's matchers; a hash keeps the key short
    # and stable for the same group.
    digest = hashlib.sha256(group_key.encode()).hexdigest()[:40]
    return f"{integration.kind}:group:{digest}"


def _alert_dedup_key(integration: Integration, fingerprint: str) -> str:
    return f"{integration.kind}:alert:{fingerprint}"


def _severity(integration: Integration, alerts: Iterable[AmAlert]) -> str:
    """The most severe of the alerts' severity labels (the default when none)."""
    found = [
        severity_from(alert.labels.get(integration.severity_label), integration.default_severity)
        for alert in alerts
    ]
    return min(found or [integration.default_severity], key=SEVERITY_RANK.__getitem__)


# Severity.rank builds the list of choices on each call: a notification of
# 5,000 alerts ranks 5,000 severities.
SEVERITY_RANK = {severity: Severity.rank(severity) for severity in Severity.values}


def _title(alerts: list[AmAlert], common_annotations: dict[str, str]) -> str:
    state = GRAFANA_STATE_ALERTS.get(alerts[0].labels.get("alertname", ""))
    if state:
        # The rule's own summary would describe the condition, not the missing data.
        rule = alerts[0].labels.get("rulename") or alerts[0].annotations.get("summary")
        return _one_line(f"{state}: {rule or 'a Grafana alert rule'}")
    summary = common_annotations.get("summary") or alerts[0].annotations.get("summary")
    return _one_line(summary or alerts[0].labels.get("alertname") or "Alertmanager alert")


def _details(
    alerts: list[AmAlert], notification: AmNotification, common_annotations: dict[str, str]
) -> str:
    lines: list[str] = []
    description = common_annotations.get("description") or alerts[0].annotations.get(
        "description", ""
    )
    if description:
        lines += [description, ""]
    lines.append("Firing alerts:")
    for alert in alerts[:50]:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
        summary = alert.annotations.get("summary", "")
        lines.append(f"- {alert.name} {{{labels}}}" + (f": {summary}" if summary else ""))
        if alert.generator_url:
            lines.append(f"  source: {alert.generator_url}")
        lines += [f"  {name}: {url}" for name, url in alert.links.items()]
        if alert.values:
            values = ", ".join(f"{k}={v:g}" for k, v in sorted(alert.values.items()))
            lines.append(f"  values: {values}")
    if len(alerts) > 50:
        lines.append(f"- … and {len(alerts) - 50} more")
    if notification.external_url:
        sender = "Grafana" if notification.grafana else "Alertmanager"
        lines += ["", f"{sender}: {notification.external_url}"]
    return "\n".join(lines)


def _event_data(notification: AmNotification, alerts: list[AmAlert]) -> dict[str, Any]:
    firing = [alert.name for alert in alerts if alert.firing]
    resolved = [alert.name for alert in alerts if not alert.firing]
    data: dict[str, Any] = {
        "receiver": notification.receiver,
        "status": notification.status,
        "firing": firing[:20],
        "resolved": resolved[:20],
        "firing_count": len(firing),
        "resolved_count": len(resolved),
        "truncated_alerts": notification.truncated_alerts,
    }
    if notification.grafana:
        data["grafana"] = {
            "org_id": notification.grafana.org_id,
            "state": notification.grafana.state,
            "title": notification.grafana.title[:200],
        }
    return data


def _track(
    integration: Integration,
    tracked: list[tuple[Incident, list[AmAlert]]],
    now: datetime,
    *,
    opened: frozenset[int] = frozenset(),
) -> None:
    """Record each alert's latest state on its incident (one upsert for all).

    The alerts of incidents just ``opened`` in this transaction have no row
    to update: they are written with one COPY (``incidents.hotpath``; the
    ORM's upsert was measured as the largest statement of a 5,000-alert
    notification), the others with the upsert."""
    rows = [
        Alert(
            incident=incident,
            integration=integration,
            fingerprint=alert.fingerprint,
            status=AlertStatus.FIRING if alert.firing else AlertStatus.RESOLVED,
            labels=alert.labels,
            annotations=alert.annotations,
            starts_at=alert.starts_at,
            ends_at=alert.ends_at,
            generator_url=alert.generator_url,
            links=alert.links,
            first_seen_at=now,
            last_seen_at=now,
        )
        for incident, alerts in tracked
        for alert in {alert.fingerprint: alert for alert in alerts}.values()
    ]
    hotpath.insert_new([row for row in rows if row.incident_id in opened])
    Alert.objects.bulk_create(
        [row for row in rows if row.incident_id not in opened],
        update_conflicts=True,
        unique_fields=["incident", "fingerprint"],
        update_fields=[
            "integration",
            "status",
            "labels",
            "annotations",
            "starts_at",
            "ends_at",
            "generator_url",
            "links",
            "last_seen_at",
        ],
        batch_size=BULK_BATCH,
    )


def _source(integration: Integration) -> str:
    return Source.GRAFANA if integration.kind == Kind.GRAFANA else Source.ALERTMANAGER


def _alerting(
    integration: Integration, notification: AmNotification, alerts: list[AmAlert], dedup_key: str
) -> Alerting:
    """The incident a batch with firing alerts opens (or the repeat it adds)."""
    firing = [alert for alert in alerts if alert.firing]
    # In fingerprint mode the notification's common annotations may describe
    # other alerts of the group: only the alert's own count.
    common = notification.common_annotations if integration.grouping == Grouping.GROUP else {}
    return Alerting(
        dedup_key=dedup_key,
        title=_title(firing, common),
        severity=_severity(integration, firing),
        details=_details(firing, notification, common),
        data=_event_data(notification, alerts),
    )


def _fire(
    integration: Integration,
    notification: AmNotification,
    alerts: list[AmAlert],
    dedup_key: str,
    now: datetime,
) -> Outcome:
    request = _alerting(integration, notification, alerts, dedup_key)
    opened = incident_services.open_incident(
        service=integration.service,
        title=request.title,
        severity=request.severity,
        details=request.details,
        source=_source(integration),
        dedup_key=dedup_key,
        data=request.data,
        now=now,
    )
    _track(integration, [(opened.incident, alerts)], now)
    return Outcome("opened" if opened.created else "joined", dedup_key, opened.incident.pk)


def _all_resolved(integration: Integration) -> str:
    return f"All alerts resolved ({_sender(integration)})."


def _note_still_firing(
    integration: Integration,
    incident: Incident,
    alerts: list[AmAlert],
    still_firing: list[dict[str, str]],
    now: datetime,
) -> Outcome:
    names = ", ".join(sorted({labels.get("alertname", "?") for labels in still_firing}))
    incident_services.add_note(
        incident,
        actor=None,
        now=now,
        text=f"{_sender(integration)}: {len(alerts)} alert(s) resolved; still firing: {names}.",
    )
    return Outcome("updated", incident.dedup_key, incident.pk)


STILL_FIRING_SHOWN = 20


def _clear(
    integration: Integration,
    notification: AmNotification,
    alerts: list[AmAlert],
    dedup_key: str,
    now: datetime,
) -> Outcome:
    incident = _open_incident_for_update(integration.service, dedup_key)
    if incident is None:
        return _clear_in_storm(integration, [(dedup_key, alerts)], now)[0]
    _track(integration, [(incident, alerts)], now)
    still_firing = list(
        incident.alerts.filter(status=AlertStatus.FIRING).values_list("labels", flat=True)[
            :STILL_FIRING_SHOWN
        ]
    )
    if still_firing:
        return _note_still_firing(integration, incident, alerts, still_firing, now)
    incident_services.resolve_incident(
        incident, actor=None, now=now, message=_all_resolved(integration)
    )
    return Outcome("resolved", dedup_key, incident.pk)


def _clear_in_storm(
    integration: Integration, batches: list[tuple[str, list[AmAlert]]], now: datetime
) -> list[Outcome]:
    """Resolved alerts with no open incident of their own: those that joined
    the service's storm resolve there (and the storm with its last one); the
    others are dropped."""
    storm = incident_services.resolve_storm_alerts(
        integration.service,
        [key for key, _ in batches],
        now=now,
        message=f"All alerts in the storm resolved ({_sender(integration)}).",
    )
    if storm is None:
        return [Outcome("dropped", key) for key, _ in batches]
    _track(integration, [(storm, alerts) for _, alerts in batches], now)
    return [Outcome("resolved", key, storm.pk) for key, _ in batches]


def _still_firing(incidents: list[Incident]) -> dict[int, list[dict[str, str]]]:
    """For each incident, the labels of up to 20 of its firing alerts (the
    first seen, as ``_clear`` reads them): one query for all."""
    if not incidents:
        return {}
    rows = (
        Alert.objects.filter(incident__in=incidents, status=AlertStatus.FIRING)
        .annotate(
            rank=Window(RowNumber(), partition_by=[F("incident")], order_by=["first_seen_at", "pk"])
        )
        .filter(rank__lte=STILL_FIRING_SHOWN)
        .values_list("incident_id", "labels")
    )
    found: dict[int, list[dict[str, str]]] = {}
    for incident_id, labels in rows:
        found.setdefault(incident_id, []).append(labels)
    return found


def _batches(
    integration: Integration, notification: AmNotification
) -> list[tuple[str, list[AmAlert]]]:
    """(dedup key, alerts) of each incident the notification is about."""
    if integration.grouping == Grouping.GROUP:
        return [(_group_dedup_key(integration, notification.group_key), notification.alerts)]
    # Sorted, so concurrent deliveries lock incidents and insert new ones in
    # the same order and cannot deadlock each other.
    return [
        (_alert_dedup_key(integration, alert.fingerprint), [alert])
        for alert in sorted(notification.alerts, key=lambda alert: alert.fingerprint)
    ]


def _lock_service_if_firing(
    integration: Integration, batches: list[tuple[str, list[AmAlert]]]
) -> None:
    """Firing alerts may open incidents or join the storm: take the service's
    lock first, before any incident's, the order every storm path keeps
    (incidents.storms)."""
    if any(alert.firing for _, alerts in batches for alert in alerts):
        storms.lock_service(integration.service)


def _one_by_one(
    integration: Integration,
    notification: AmNotification,
    batches: list[tuple[str, list[AmAlert]]],
    now: datetime,
) -> list[Outcome]:
    """Each batch on its own: ``open_incident`` settles every race by itself."""
    outcomes: list[Outcome] = []
    with transaction.atomic():
        _lock_service_if_firing(integration, batches)
        for dedup_key, alerts in batches:
            if any(alert.firing for alert in alerts):
                outcomes.append(_fire(integration, notification, alerts, dedup_key, now))
            else:
                outcomes.append(_clear(integration, notification, alerts, dedup_key, now))
    return outcomes


def _in_bulk(
    integration: Integration,
    notification: AmNotification,
    batches: list[tuple[str, list[AmAlert]]],
    now: datetime,
) -> list[Outcome]:
    """Every batch at once, with the outcomes of ``_one_by_one``: one query
    locks the open incidents of all the dedup keys, one INSERT each writes
    the new incidents, their timeline events and the alerts, one UPDATE
    resolves the incidents whose alerts have all resolved. Notes ("still
    firing: …") stay one per incident."""
    service = integration.service
    with transaction.atomic():
        _lock_service_if_firing(integration, batches)
        locked = incident_services.lock_open_incidents(service, [key for key, _ in batches])
        firing = [(key, alerts) for key, alerts in batches if any(a.firing for a in alerts)]
        opened = incident_services.open_or_join_many(
            service=service,
            source=_source(integration),
            alerts=[_alerting(integration, notification, alerts, key) for key, alerts in firing],
            locked=locked,
            now=now,
        )
        results = {key: result for (key, _), result in zip(firing, opened, strict=True)}
        clearing = [
            (locked[key], alerts) for key, alerts in batches if key not in results and key in locked
        ]
        _track(
            integration,
            [(results[key].incident, alerts) for key, alerts in firing] + clearing,
            now,
            opened=frozenset(r.incident.pk for r in opened if r.created),
        )
        still_firing = _still_firing([incident for incident, _ in clearing])
        outcomes: list[Outcome] = []
        resolving: list[Incident] = []
        homeless = [
            (key, alerts) for key, alerts in batches if key not in results and key not in locked
        ]
        in_storm = _clear_in_storm(integration, homeless, now) if homeless else []
        dropped_or_stormed = dict(zip([key for key, _ in homeless], in_storm, strict=True))
        for key, alerts in batches:
            if key in results:
                result = results[key]
                action = "opened" if result.created else "joined"
                outcomes.append(Outcome(action, key, result.incident.pk))
            elif key not in locked:
                outcomes.append(dropped_or_stormed[key])
            elif found := still_firing.get(locked[key].pk):
                outcomes.append(_note_still_firing(integration, locked[key], alerts, found, now))
            else:
                resolving.append(locked[key])
                outcomes.append(Outcome("resolved", key, locked[key].pk))
        incident_services.resolve_many(resolving, now=now, message=_all_resolved(integration))
    return outcomes


def ingest_alertmanager(
    integration: Integration, notification: AmNotification, *, now: datetime | None = None
) -> list[Outcome]:
    """Apply one webhook notification (Alertmanager's or Grafana's), in one
    transaction. Returns what happened per incident.

    Applied in bulk: a notification of 5,000 alerts (an alert storm, each its
    own incident in fingerprint mode) costs a few statements, not a few per
    alert. A concurrent delivery that opened one of its incidents first makes
    the bulk insert fail (``LostRace``) and roll back: the second attempt
    finds that delivery's incidents and joins them. Losing twice (a third
    sender meanwhile) falls back to applying the batches one by one, where
    ``open_incident`` settles each race by itself. Two alerts with the same
    fingerprint in one notification are applied one by one too, as before
    (the second repeats on the incident the first opened).
    """
    now = now or timezone.now()
    batches = _batches(integration, notification)
    if len({key for key, _ in batches}) == len(batches):
        for _attempt in range(2):
            try:
                return _in_bulk(integration, notification, batches, now)
            except incident_services.LostRace:
                continue
    return _one_by_one(integration, notification, batches, now)


# --- Events API v2 ----------------------------------------------------------


def _event_fields(event: Event) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "source": event.source,
        "component": event.component,
        "group": event.group,
        "class": event.event_class,
        "timestamp": event.timestamp.isoformat() if event.timestamp else "",
        "client": event.client,
        "client_url": event.client_url,
        "links": event.links,
        "images": event.images,
        "custom_details": event.custom_details,
    }
    return {key: value for key, value in fields.items() if value not in ("", [], None)}


def _event_details(event: Event) -> str:
    lines = [event.summary] if len(event.summary) > TITLE_LENGTH else []
    for label, value in (
        ("Source", event.source),
        ("Component", event.component),
        ("Group", event.group),
        ("Class", event.event_class),
        ("Client", " ".join(filter(None, (event.client, event.client_url)))),
    ):
        if value:
            lines.append(f"{label}: {value}")
    lines += [f"Link: {link.get('text') or link['href']} {link['href']}" for link in event.links]
    if event.custom_details is not None:
        details = json.dumps(event.custom_details, indent=2, sort_keys=True, ensure_ascii=False)
        lines += ["", "Custom details:", details]
    return "\n".join(lines)


def _resolve_in_storm(
    integration: Integration, event: Event, dedup_key: str, now: datetime
) -> Outcome:
    """A resolve for a key that joined the service's storm resolves it there.
    An acknowledge is dropped: one alert's sender does not take a storm of
    many on everyone's behalf (a responder acknowledges the storm)."""
    if event.action == "resolve":
        storm = incident_services.resolve_storm_alerts(
            integration.service,
            [dedup_key],
            now=now,
            message="All alerts in the storm resolved (Events API v2).",
        )
        if storm is not None:
            return Outcome("resolved", dedup_key, storm.pk)
    return Outcome("dropped", dedup_key)


def ingest_event(integration: Integration, event: Event, *, now: datetime | None = None) -> Outcome:
    """Apply one Events API v2 event (PagerDuty semantics)."""
    now = now or timezone.now()
    # A trigger without a dedup key gets a fresh one, returned to the sender
    # so it can acknowledge or resolve the incident later.
    dedup_key = event.dedup_key or uuid.uuid4().hex
    if event.action == "trigger":
        # Most triggers repeat an open incident's alert: one statement when
        # they do; a new alert is one transaction (``open_alert``).
        repeated = incident_services.repeat_alert(
            service=integration.service,
            dedup_key=event.dedup_key,
            title=_one_line(event.summary),
            source=Source.EVENTS_V2,
            data=_event_fields(event),
            now=now,
        )
        if repeated is not None:
            return Outcome("joined", dedup_key, repeated)
        landed = incident_services.open_alert(
            service=integration.service,
            title=_one_line(event.summary),
            severity=event.severity,
            details=_event_details(event),
            source=Source.EVENTS_V2,
            dedup_key=dedup_key,
            data=_event_fields(event),
            now=now,
        )
        return Outcome("opened" if landed.created else "joined", dedup_key, landed.incident_id)
    with transaction.atomic():
        incident = _open_incident_for_update(integration.service, dedup_key)
        if incident is None:
            return _resolve_in_storm(integration, event, dedup_key, now)
        if event.action == "acknowledge":
            if incident.status != Status.TRIGGERED:
                return Outcome("dropped", dedup_key, incident.pk)  # already acknowledged
            incident_services.acknowledge_incident(incident, actor=None, now=now)
            return Outcome("acknowledged", dedup_key, incident.pk)
        incident_services.resolve_incident(
            incident, actor=None, now=now, message="Resolved by an Events API v2 event."
        )
        return Outcome("resolved", dedup_key, incident.pk)


# --- Change events -----------------------------------------------------------


def record_change(
    integration: Integration, change: ChangePayload, *, now: datetime | None = None
) -> ChangeEvent:
    """Keep a change event on the integration's service (one INSERT)."""
    now = now or timezone.now()
    return ChangeEvent.objects.create(
        service=integration.service,
        integration=integration,
        summary=change.summary,
        source=change.source,
        occurred_at=change.timestamp or now,
        received_at=now,
        custom_details=change.custom_details,
        links=change.links,
    )


# --- Heartbeats ------------------------------------------------------------


def record_ping(integration: Integration, *, now: datetime | None = None) -> Outcome:
    """A heartbeat ping: push the deadline on; resolve the incident of a missed one.

    The row lock orders a ping against the overdue check (which claims the
    row with a conditional UPDATE in its own transaction): whichever commits
    first wins, and the other sees its result — a ping never leaves a
    heartbeat marked down with its incident resolved, or the reverse.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = (
            Integration.objects.select_for_update().select_related("service").get(pk=integration.pk)
        )
        was_down = locked.heartbeat_down
        locked.last_ping_at = now
        locked.heartbeat_due_at = now + timedelta(seconds=locked.heartbeat_timeout_seconds)
        locked.heartbeat_down = False
        locked.save(update_fields=["last_ping_at", "heartbeat_due_at", "heartbeat_down"])
        dedup_key = locked.heartbeat_dedup_key
        if not was_down:
            return Outcome("ok", dedup_key)
        incident = _open_incident_for_update(locked.service, dedup_key)
        if incident is None:
            return Outcome("ok", dedup_key)  # someone resolved it by hand already
        incident_services.resolve_incident(
            incident, actor=None, now=now, message=f"Heartbeat {locked.name!r} is pinging again."
        )
        return Outcome("resolved", dedup_key, incident.pk)


def overdue_heartbeats(now: datetime) -> QuerySet[Integration]:
    """Heartbeats whose deadline passed and that have no incident yet.

    Matches the partial index ``integration_heartbeat_due`` (see the model).
    """
    return Integration.objects.filter(
        kind=Kind.HEARTBEAT,
        revoked_at__isnull=True,
        heartbeat_down=False,
        heartbeat_due_at__isnull=False,
        heartbeat_due_at__lte=now,
    )


RETRY_BAD_HEARTBEAT = timedelta(minutes=1)


def _open_heartbeat_incident(pk: int, now: datetime) -> bool:
    with transaction.atomic():
        # The claim. Two checkers (two beats, or a slow run overlapping the
        # next) may both have listed this heartbeat; the UPDATE takes the row
        # lock and PostgreSQL re-checks the WHERE against the committed row, so
        # exactly one of them updates a row — the other sees 0 rows and moves
        # on. A ping that committed first has pushed heartbeat_due_at past now,
        # so the claim finds nothing to do.
        claimed = overdue_heartbeats(now).filter(pk=pk).update(heartbeat_down=True)
        if not claimed:
            return False
        heartbeat = Integration.objects.select_related("service").get(pk=pk)
        late = now - (heartbeat.last_ping_at or now)
        incident_services.open_incident(
            service=heartbeat.service,
            title=_one_line(f"Heartbeat missed: {heartbeat.name}"),
            severity=heartbeat.default_severity,
            details=(
                f"No ping for {int(late.total_seconds())} s (timeout "
                f"{heartbeat.heartbeat_timeout_seconds} s). Last ping: "
                f"{heartbeat.last_ping_at.isoformat() if heartbeat.last_ping_at else 'never'}. "
                "The next ping resolves this incident."
            ),
            source=Source.HEARTBEAT,
            dedup_key=heartbeat.heartbeat_dedup_key,
            data={"integration": heartbeat.pk, "last_ping_at": str(heartbeat.last_ping_at)},
            now=now,
        )
        return True


def open_overdue_heartbeats(*, now: datetime | None = None, batch: int = 500) -> int:
    """Open an incident for every heartbeat past its deadline; returns how many.

    Safe to run concurrently with itself and with pings (see the claim in
    ``_open_heartbeat_incident``). A heartbeat that fails to open its incident
    gets its deadline pushed back a minute, so one bad row cannot make every
    run fail on it.
    """
    now = now or timezone.now()
    due = list(
        overdue_heartbeats(now).order_by("heartbeat_due_at").values_list("pk", flat=True)[:batch]
    )
    opened = 0
    for pk in due:
        try:
            opened += _open_heartbeat_incident(pk, now)
        except Exception:
            logger.exception("could not open a heartbeat incident", extra={"integration_id": pk})
            Integration.objects.filter(pk=pk).update(heartbeat_due_at=now + RETRY_BAD_HEARTBEAT)
    return opened


# --- Email -----------------------------------------------------------------


def _email_idempotency_key(integration: Integration, mail: Mail) -> str:
    # The Message-ID with the content: a redelivery of the same message (an
    # MTA retrying after a timeout, a second MX) replays, while a sender that
    # reuses one Message-ID for different alerts (some appliances do) still
    # gets each alert through. Per integration, because one message sent to
    # two integrations' addresses is delivered once to each.
    content = "\0".join((mail.message_id, mail.subject, mail.body))
    return f"email:{integration.pk}:{hashlib.sha256(content.encode()).hexdigest()[:40]}"


def _email_seen(key: str) -> bool:
    return (
        Incident.objects.filter(idempotency_key=key).exists()
        or JoinedRequest.objects.filter(key=key).exists()
    )


def ingest_email(integration: Integration, mail: Mail, *, now: datetime | None = None) -> Outcome:
    """Apply one message to an email integration (its ``email`` settings loaded).

    Subject → title, text → details, the integration's default severity. The
    dedup key comes from the integration's rule (``mail.dedup_text``); with
    resolve-by-subject on, a resolving subject resolves the open incident with
    that key (none open: dropped, as Events API v2 does). A message with a
    Message-ID is applied once, however often it is delivered: ``open_incident``
    replays it by its idempotency key (its unique index settles two deliveries
    racing).
    """
    now = now or timezone.now()
    rules = integration.email
    text = dedup_text(
        mail,
        header=rules.dedup_header,
        pattern=rules.dedup_pattern,
        resolve_pattern=rules.resolve_pattern,
    )
    dedup_key = "email:" + hashlib.sha256(text.encode()).hexdigest()[:40]
    if rules.resolve_by_subject and is_resolution(mail.subject, rules.resolve_pattern):
        with transaction.atomic():
            incident = _open_incident_for_update(integration.service, dedup_key)
            if incident is None:
                return Outcome("dropped", dedup_key)
            incident_services.resolve_incident(
                incident,
                actor=None,
                now=now,
                message=_one_line(f"Resolved by email: {mail.subject}"),
            )
            return Outcome("resolved", dedup_key, incident.pk)
    key = _email_idempotency_key(integration, mail) if mail.message_id else None
    # Only for the answer's wording: a race between two deliveries is settled
    # by open_incident, and the loser is then reported as "joined".
    seen = key is not None and _email_seen(key)
    opened = incident_services.open_incident(
        service=integration.service,
        title=_one_line(mail.subject),
        severity=integration.default_severity,
        details=mail.body,
        source=Source.EMAIL,
        dedup_key=dedup_key,
        idempotency_key=key,
        data={
            "from": mail.sender[:300],
            "message_id": mail.message_id[:300],
            "subject": mail.subject[:300],
            "dedup": text[:200],
            "integration": integration.pk,
        },
        now=now,
    )
    action = "opened" if opened.created else "duplicate" if seen else "joined"
    return Outcome(action, dedup_key, opened.incident.pk)
