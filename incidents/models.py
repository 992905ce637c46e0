"""Incidents, the services they affect, and the timeline of everything that happened.

Rules that must hold whatever code path writes a row are database constraints
(status and severity values, one open incident per dedup key, one incident per
idempotency key); the services in ``incidents.services`` are the only code
that changes an incident, and they rely on these constraints to settle races.
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import (
    BooleanField,
    Case,
    ExpressionWrapper,
    F,
    IntegerField,
    Q,
    Value,
    When,
)
from django.urls import reverse


class Severity(models.TextChoices):
    # PagerDuty Events v2 names, shown to people as SEV1-SEV4.
    CRITICAL = "critical", "SEV1"
    ERROR = "error", "SEV2"
    WARNING = "warning", "SEV3"
    INFO = "info", "SEV4"

    @classmethod
    def rank(cls, value: str) -> int:
        return list(cls.values).index(value) + 1


class Status(models.TextChoices):
    TRIGGERED = "triggered", "Triggered"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


# Which status may follow which. Acknowledged → triggered is the
# acknowledgement timeout re-paging a forgotten incident; resolved → triggered
# is a reopen.
TRANSITIONS: dict[str, frozenset[str]] = {
    Status.TRIGGERED: frozenset({Status.ACKNOWLEDGED, Status.RESOLVED}),
    Status.ACKNOWLEDGED: frozenset({Status.RESOLVED, Status.TRIGGERED}),
    Status.RESOLVED: frozenset({Status.TRIGGERED}),
}
OPEN_STATUSES = (Status.TRIGGERED, Status.ACKNOWLEDGED)


# Severity as a number (SEV1 = 1) for sorting, most severe first. The
# dashboard's index is built on this exact expression, so its ORDER BY can
# read the first page straight from the index instead of sorting every open
# incident.
SEVERITY_RANK = Case(
    *(When(severity=value, then=Value(rank)) for rank, value in enumerate(Severity.values, 1)),
    output_field=IntegerField(),
)

# False for incidents nobody was reached for, so they sort first within their
# severity; part of the dashboard index for the same reason.
NOBODY_REACHED_LAST = ExpressionWrapper(
    Q(nobody_reached_at__isnull=True), output_field=BooleanField()
)


class Source(models.TextChoices):
    UI = "ui", "Web UI"
    API = "api", "API"
    ALERTMANAGER = "alertmanager", "Alertmanager"
    GRAFANA = "grafana", "Grafana alerting"
    EVENTS_V2 = "events_v2", "Events API v2"
    HEARTBEAT = "heartbeat", "Heartbeat"
    REPORT = "report", "Problem report"
    IMPORT = "import", "Import"
    EMAIL = "email", "Email"


class Service(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    escalation_policy = models.ForeignKey(
        "paging.EscalationPolicy",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="services",
    )
    # An acknowledged incident still open this long after its acknowledgement
    # is re-triggered and pages again. Empty: never.
    ack_timeout_minutes = models.PositiveIntegerField(null=True, blank=True)
    # The public status page lists a service only when staff made it public,
    # under a name written for outsiders: the internal name may say which
    # host or customer it is, so it is never the default.
    public = models.BooleanField(
        default=False, help_text="Show this service and its incidents on the public status page."
    )
    public_name = models.CharField(
        max_length=100,
        blank=True,
        help_text="The name the public status page shows. Required to make the service public.",
    )
    # Storm protection (incidents.storms): when monitoring opens more than
    # ``storm_threshold`` incidents on the service within
    # ``storm_window_seconds``, further new alerts join one "Alert storm"
    # incident until ``storm_quiet_seconds`` pass without a new one. Empty:
    # the STORM_* settings; a threshold of 0 turns it off.
    storm_threshold = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Incidents monitoring may open within the window before further alerts join "
        "one storm incident. Empty: the STORM_THRESHOLD setting (20); 0: never.",
    )
    storm_window_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="The window, in seconds. Empty: the STORM_WINDOW_SECONDS setting (60).",
    )
    storm_quiet_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="A storm ends after this many seconds without a new alert; alerts then open "
        "their own incidents again. Empty: the STORM_QUIET_SECONDS setting (300).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["name"]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(public=False) | ~Q(public_name=""),
                name="service_public_has_public_name",
                violation_error_message="A public service needs a public name.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


def default_public_title(public_name: str) -> str:
    """What the status page says of an incident nobody has named for the public."""
    return f"Investigating an issue with {public_name}"


class Incident(models.Model):
    title = models.CharField(max_length=200)
    # What the public status page calls it, written by a responder; empty
    # shows a generic sentence (incidents.models.default_public_title), never
    # the title, which monitoring or a stranger wrote.
    public_title = models.CharField(max_length=200, blank=True, default="")
    details = models.TextField(blank=True)
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="incidents")
    severity = models.CharField(max_length=10, choices=Severity.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.TRIGGERED)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.API)
    dedup_key = models.CharField(max_length=255, blank=True, default="")
    idempotency_key = models.CharField(max_length=255, null=True, blank=True, unique=True)
    # sha256 of the normalised create request, to tell a replay from a reuse
    # of the same idempotency key with a different body.
    request_fingerprint = models.CharField(max_length=64, blank=True, default="")

    opened_at = models.DateTimeField(db_index=True)
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    # Durable escalation position, decided by the paging engine and written
    # by incidents.services (advance_escalation and friends); Redis holds the
    # live copy (paging.state). Level 1 is the policy's first level
    # (0: nobody paged yet); cycle counts repeats of the whole policy; step
    # counts every move and is the token that makes each move happen once.
    escalation_level = models.PositiveIntegerField(default=0)
    escalation_cycle = models.PositiveIntegerField(default=0)
    escalation_step = models.PositiveIntegerField(default=0)
    # When the next escalation (triggered) or re-trigger (acknowledged) is due.
    next_escalation_at = models.DateTimeField(null=True, blank=True)
    # Set by the engine when the last level was paged and nobody could be
    # reached (no usable contact method, or every attempt failed); cleared
    # when another level is paged or someone acknowledges.
    nobody_reached_at = models.DateTimeField(null=True, blank=True)
    # An "Alert storm on <service>" incident: the alerts that joined it are
    # its StormAlert rows (incidents.storms).
    is_storm = models.BooleanField(default=False)

    class Meta:
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(status__in=Status.values), name="incident_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(severity__in=Severity.values), name="incident_severity_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status=Status.ACKNOWLEDGED) | Q(acknowledged_at__isnull=False),
                name="incident_acknowledged_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(status=Status.RESOLVED) | Q(resolved_at__isnull=False),
                name="incident_resolved_has_time",
            ),
            # At most one open incident per (service, dedup key): repeats of an
            # alert join it, and two concurrent creates cannot both insert —
            # the loser gets an IntegrityError and joins the winner's incident.
            models.UniqueConstraint(
                fields=["service", "dedup_key"],
                condition=~Q(status=Status.RESOLVED) & ~Q(dedup_key=""),
                name="incident_one_open_per_dedup_key",
            ),
            # At most one open storm incident per service. Storms are opened
            # under the service's row lock (incidents.storms), so this never
            # fires in practice; it is the backstop should a path forget.
            models.UniqueConstraint(
                fields=["service"],
                condition=Q(is_storm=True) & ~Q(status=Status.RESOLVED),
                name="incident_one_open_storm_per_service",
            ),
        ]
        indexes: ClassVar = [
            # The dashboard's page: open incidents ordered by (rank, age); see
            # selectors._PAGE_SQL, whose WHERE and ORDER BY match these.
            models.Index(
                SEVERITY_RANK,
                NOBODY_REACHED_LAST,
                F("opened_at"),
                F("id"),
                condition=Q(status__in=OPEN_STATUSES),
                name="incident_open_dashboard",
            ),
            # The dashboard's counts per severity (an index-only scan).
            models.Index(
                fields=["severity"],
                condition=Q(status__in=OPEN_STATUSES),
                name="incident_open_severity",
            ),
            # The dashboard's post-mortem suggestions: recently resolved ones.
            models.Index(
                fields=["resolved_at"],
                condition=Q(status="resolved"),
                name="incident_resolved_at",
            ),
            # The history search's "exact dedup key", whatever the status (the
            # unique constraint above covers open ones only). With the title's
            # trigram index (migration 0012, where pg_trgm exists) PostgreSQL
            # answers "title contains or key is" from two indexes, not a scan.
            models.Index(fields=["dedup_key"], name="incident_dedup_key"),
            # Storm protection counts the incidents a service opened within
            # its window (incidents.storms.storm_to_join).
            models.Index(fields=["service", "opened_at"], name="incident_service_opened"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("incident-detail", args=[self.pk])

    @property
    def number(self) -> int:
        return int(self.pk)

    @property
    def public_title_default(self) -> str:
        return default_public_title(self.service.public_name or "this service")

    @property
    def is_open(self) -> bool:
        return self.status != Status.RESOLVED

    @property
    def severity_rank(self) -> int:
        return Severity.rank(self.severity)


class EventKind(models.TextChoices):
    OPENED = "opened", "Opened"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"
    REOPENED = "reopened", "Reopened"
    NOTE = "note", "Note"
    ESCALATED = "escalated", "Escalated"
    PAGED = "paged", "Paged"
    RETRIGGERED = "retriggered", "Re-triggered"
    ALERT = "alert", "Alert repeat"


class TimelineEvent(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="timeline")
    kind = models.CharField(max_length=20, choices=EventKind.choices)
    # Null actor means the system did it (an integration, the escalation loop).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering: ClassVar = ["created_at", "pk"]
        indexes: ClassVar = [
            models.Index(fields=["incident", "created_at"]),
            # On-call health (insights.selectors): which incidents escalated in
            # a range, without reading every event of the range.
            models.Index(
                fields=["created_at"],
                condition=Q(kind="escalated"),
                name="timeline_escalated",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on #{self.incident_id}"


class JoinedRequest(models.Model):
    """An ``Idempotency-Key`` whose request joined an open incident by its
    dedup key (an alert repeat) instead of opening one.

    A key that opened an incident lives on the incident itself; this keeps the
    other outcome, so a retry of the request gets the same incident back
    without a second alert repeat, and the key with a different body is a
    conflict, whichever way the first request went. The unique key settles
    concurrent retries: one insert wins, the others replay it.
    """

    key = models.CharField(max_length=255, unique=True)
    request_fingerprint = models.CharField(max_length=64)
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.key} joined #{self.incident_id}"


class StormAlertStatus(models.TextChoices):
    FIRING = "firing", "Firing"
    RESOLVED = "resolved", "Resolved"
    SPLIT = "split", "Split out"


class StormAlert(models.Model):
    """One alert (by dedup key) that joined a storm incident instead of
    opening its own: what it said first, how often it fired, and whether it
    still fires. The storm resolves when none fires any more."""

    storm = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="storm_alerts")
    dedup_key = models.CharField(max_length=255)
    name = models.CharField(max_length=200)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    source = models.CharField(max_length=20, choices=Source.choices)
    details = models.TextField(blank=True)
    status = models.CharField(
        max_length=10, choices=StormAlertStatus.choices, default=StormAlertStatus.FIRING
    )
    count = models.PositiveIntegerField(default=1)  # triggers received, repeats included
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    # The incident a responder split this alert out into.
    split_into = models.ForeignKey(
        Incident, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering: ClassVar = ["first_seen_at", "pk"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["storm", "dedup_key"], name="storm_alert_one_per_key"),
            models.CheckConstraint(
                condition=Q(status__in=StormAlertStatus.values), name="storm_alert_status_valid"
            ),
        ]
        indexes: ClassVar = [
            # "Does anything still fire?" on every resolve of a storm alert.
            models.Index(
                fields=["storm"],
                condition=Q(status="firing"),
                name="storm_alert_firing",
            ),
            # The storm's newest alert (is it still storming?).
            models.Index(fields=["storm", "first_seen_at"], name="storm_alert_first_seen"),
        ]

    def __str__(self) -> str:
        return f"{self.name} in storm #{self.storm_id} ({self.status})"
