"""Integration keys (how monitoring reaches triage) and the alerts they reported.

An integration belongs to one service and has a secret key. Only the key's
SHA-256 and a short prefix are stored: the key is shown once, when it is
created or rotated, like an API token.
"""

from __future__ import annotations

import re
from typing import ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from incidents.models import Incident, Service, Severity


class Kind(models.TextChoices):
    ALERTMANAGER = "alertmanager", "Prometheus Alertmanager"
    GRAFANA = "grafana", "Grafana alerting (webhook contact point)"
    EVENTS_V2 = "events_v2", "Events API v2 (PagerDuty-compatible)"
    HEARTBEAT = "heartbeat", "Heartbeat monitor"
    EMAIL = "email", "Email"


class Grouping(models.TextChoices):
    # One incident per Alertmanager notification group (its groupKey), or one
    # per alert (its fingerprint).
    GROUP = "group", "One incident per alert group (groupKey)"
    FINGERPRINT = "fingerprint", "One incident per alert (fingerprint)"


DEFAULT_RATE_LIMIT = 120  # events per minute and key, PagerDuty's figure
DEFAULT_HEARTBEAT_TIMEOUT = 300


class Integration(models.Model):
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="integrations")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    name = models.CharField(max_length=100)
    # The first characters of the key, shown so people can tell keys apart.
    key_prefix = models.CharField(max_length=12)
    key_hash = models.CharField(max_length=64, unique=True)

    # Alertmanager and Grafana (whose webhook is Alertmanager's, extended).
    grouping = models.CharField(max_length=12, choices=Grouping.choices, default=Grouping.GROUP)
    severity_label = models.CharField(
        max_length=100,
        default="severity",
        validators=[
            RegexValidator(
                r"^[a-zA-Z_][a-zA-Z0-9_]*$", "A Prometheus label name, such as severity."
            )
        ],
        help_text="Alertmanager label whose value is the incident severity.",
    )
    default_severity = models.CharField(
        max_length=10,
        choices=Severity.choices,
        default=Severity.ERROR,
        help_text="Used when the severity label is missing or has an unknown value.",
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        default=DEFAULT_RATE_LIMIT,
        validators=[MinValueValidator(1)],
        help_text="Requests per minute this key may send; more get 429 Too Many Requests.",
    )

    # Heartbeat only. A heartbeat is watched from its first ping on: due_at is
    # the ping time plus the timeout, and `down` says an incident was opened
    # for the missed deadline (the next ping resolves it).
    heartbeat_timeout_seconds = models.PositiveIntegerField(
        default=DEFAULT_HEARTBEAT_TIMEOUT, validators=[MinValueValidator(10)]
    )
    last_ping_at = models.DateTimeField(null=True, blank=True)
    heartbeat_due_at = models.DateTimeField(null=True, blank=True)
    heartbeat_down = models.BooleanField(default=False)

    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rotated_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["service__name", "name", "pk"]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(kind__in=Kind.values), name="integration_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(grouping__in=Grouping.values), name="integration_grouping_valid"
            ),
            models.CheckConstraint(
                condition=Q(default_severity__in=Severity.values),
                name="integration_default_severity_valid",
            ),
            models.CheckConstraint(
                condition=Q(rate_limit_per_minute__gte=1), name="integration_rate_limit_positive"
            ),
            models.CheckConstraint(
                condition=Q(heartbeat_timeout_seconds__gte=10),
                name="integration_heartbeat_timeout_min",
            ),
        ]
        indexes: ClassVar = [
            # The heartbeat check's query (services.overdue_heartbeat_ids):
            # active, up heartbeats whose deadline passed. Only watched
            # heartbeats are in the index, so a check reads just the due ones.
            models.Index(
                fields=["heartbeat_due_at"],
                condition=Q(
                    kind="heartbeat",
                    revoked_at__isnull=True,
                    heartbeat_down=False,
                    heartbeat_due_at__isnull=False,
                ),
                name="integration_heartbeat_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()}, {self.key_prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def heartbeat_dedup_key(self) -> str:
        return f"heartbeat:{self.pk}"


class AlertStatus(models.TextChoices):
    FIRING = "firing", "Firing"
    RESOLVED = "resolved", "Resolved"


class Alert(models.Model):
    """One Alertmanager alert (by fingerprint) that is part of an incident.

    The incident resolves when every alert it tracks has resolved, so a group
    whose first alert clears while a second still fires stays open.
    """

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="alerts")
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="alerts")
    fingerprint = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=AlertStatus.choices)
    labels = models.JSONField(default=dict)
    annotations = models.JSONField(default=dict)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    generator_url = models.TextField(blank=True, default="")
    # Grafana's links for the alert (dashboard, panel, silence, image), http(s)
    # URLs only: they are rendered as links on the incident page.
    links = models.JSONField(default=dict, blank=True)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        ordering: ClassVar = ["first_seen_at", "pk"]
        constraints: ClassVar = [
            # The webhook upserts on this pair (INSERT ... ON CONFLICT), so two
            # deliveries of the same group (Alertmanager HA pairs both send)
            # cannot track an alert twice.
            models.UniqueConstraint(
                fields=["incident", "fingerprint"], name="alert_one_per_incident_fingerprint"
            ),
            models.CheckConstraint(
                condition=Q(status__in=AlertStatus.values), name="alert_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.labels.get('alertname', self.fingerprint)} ({self.status})"


# --- Email integrations ------------------------------------------------------

# Subjects such as "[RESOLVED] Disk full", "RESOLVED: Disk full", "Recovered
# disk on db1", "** RECOVERY Service Alert: …" (Nagios), "OK - Disk full",
# "Disk full - resolved" or "Disk full [OK]". "OK" needs a separator or
# brackets, so "OK to deploy?" and "Backup not ok" are not resolutions.
DEFAULT_RESOLVE_PATTERN = (
    r"(?i)^\W*?(?:\[\s*(?:resolved|ok|recovered|recovery|cleared)\b[^\]]*\]"
    r"|(?:resolved|ok|recovered|recovery|cleared)\s*[:\-\u2013\u2014]"
    r"|(?:resolved|recovered|recovery)\b)"
    r"|\s*(?:[:\-\u2013\u2014]\s*(?:resolved|ok|recovered|cleared)"
    r"|[(\[]\s*(?:resolved|ok|recovered|cleared)\s*[)\]])[\s!.]*$"
)


def validate_regex(value: str) -> None:
    try:
        compiled = re.compile(value)
    except re.error as exc:
        raise ValidationError(f"Not a valid regular expression: {exc}.") from exc
    if compiled.groups > 1:
        raise ValidationError("Use at most one group (…); its text is what counts.")


class EmailSettings(models.Model):
    """An email integration's own address, and how its messages become incidents.

    Each email integration has its own address, as in PagerDuty: the address
    is what routes a message to the integration (and so to a service), and,
    like a key, whoever knows it can open incidents. Every email integration
    has exactly one row (created with the integration, ``email_routes``).
    """

    integration = models.OneToOneField(
        Integration, on_delete=models.CASCADE, primary_key=True, related_name="email"
    )
    address = models.CharField(
        max_length=254,
        unique=True,
        validators=[EmailValidator()],
        help_text="Mail to this address opens incidents on the integration's service.",
    )
    dedup_header = models.CharField(
        max_length=100,
        blank=True,
        default="",
        validators=[RegexValidator(r"^[!-9;-~]+$", "A header name, such as X-Alert-ID.")],
        help_text="Deduplicate by this header's value (e.g. X-Alert-ID) instead of the "
        "subject. Messages without it fall back to the subject.",
    )
    dedup_pattern = models.CharField(
        max_length=500,
        blank=True,
        default="",
        validators=[validate_regex],
        help_text="A regular expression searched in the subject (or the header above); its "
        "group, or the whole match, is the dedup key. Blank, or no match: the whole text.",
    )
    resolve_by_subject = models.BooleanField(
        default=False,
        help_text="A subject matching the resolve pattern resolves the open incident with "
        "the same dedup key instead of opening one.",
    )
    resolve_pattern = models.CharField(
        max_length=500,
        default=DEFAULT_RESOLVE_PATTERN,
        validators=[validate_regex],
        help_text="The default matches [RESOLVED] …, RESOLVED: …, OK: …, … - recovered, "
        "… [OK]. The matched text is left out of the dedup key.",
    )

    class Meta:
        verbose_name = "email integration settings"
        verbose_name_plural = "email integration settings"
        constraints: ClassVar = [
            # Routing compares lower-cased addresses with an index probe on the
            # unique index, so every stored address is lower case.
            models.CheckConstraint(
                condition=Q(address=Lower("address")), name="email_address_lower_case"
            ),
        ]

    def __str__(self) -> str:
        return self.address


class ImportSource(models.Model):
    """Which object an earlier ``import_config`` run made from which object of
    the old system, so the next run updates it instead of making another.

    ``object_id`` is the triage row of the model ``kind`` names (a schedule,
    rotation, override, escalation policy, service or integration); no
    foreign key, so one table serves every kind.
    """

    system = models.CharField(max_length=20)  # "oncall" or "pagerduty"
    kind = models.CharField(max_length=20)
    source_id = models.CharField(max_length=300)
    object_id = models.PositiveBigIntegerField()
    imported_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["system", "kind", "source_id"], name="import_source_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.system} {self.kind} {self.source_id} → #{self.object_id}"


class ChangeEvent(models.Model):
    """A change to a service (a deploy, a config push) reported through
    PagerDuty's Change Events API. Changes never page anyone; an incident shows
    those to its service in the day before it opened, as PagerDuty does."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="changes")
    integration = models.ForeignKey(
        Integration, null=True, blank=True, on_delete=models.SET_NULL, related_name="changes"
    )
    summary = models.CharField(max_length=1024)
    source = models.CharField(max_length=255, blank=True, default="")
    # When it happened: the sender's payload.timestamp, else when it arrived.
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    custom_details = models.JSONField(null=True, blank=True)
    # [{"href": ..., "text": ...}] as sent; only http(s) ones are rendered as links.
    links = models.JSONField(default=list, blank=True)

    class Meta:
        ordering: ClassVar = ["-occurred_at", "-pk"]
        indexes: ClassVar = [
            # "Recent changes" on an incident: one service, a time window
            # (selectors.recent_changes).
            models.Index(fields=["service", "occurred_at"], name="change_service_occurred"),
        ]

    def __str__(self) -> str:
        return self.summary[:80]
