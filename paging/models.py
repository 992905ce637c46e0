"""People, how to reach them, who is on call when, and how incidents escalate.

The durable escalation position of an incident (level, cycle, step, next
deadline) lives on ``incidents.Incident``; ``paging.escalation`` is the only
code that moves it. Redis holds the live copy (``paging.state``).
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class ContactMethod(models.Model):
    """One way to reach a person, as an apprise URL (ntfy://, slack://, mailto://, json://...)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="contact_methods"
    )
    name = models.CharField(max_length=100)
    # Apprise URLs often embed credentials: never log them, show them masked.
    url = models.CharField(max_length=1000)
    position = models.PositiveSmallIntegerField(default=0)
    enabled = models.BooleanField(default=True)
    last_test_at = models.DateTimeField(null=True, blank=True)
    last_test_result = models.CharField(max_length=300, blank=True)
    # When a test or a real page was last delivered through this method: a
    # method never delivered to is not known to reach anyone ("unverified").
    reach_verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["user", "position", "pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.scheme})"

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0].lower() if "://" in self.url else "unknown"


class NotificationRule(models.Model):
    """Notify this contact method this many minutes after the person is paged."""

    contact_method = models.ForeignKey(
        ContactMethod, on_delete=models.CASCADE, related_name="rules"
    )
    delay_minutes = models.PositiveIntegerField(default=0)

    class Meta:
        ordering: ClassVar = ["delay_minutes", "pk"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["contact_method", "delay_minutes"], name="notification_rule_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.contact_method} after {self.delay_minutes} min"


class Schedule(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    time_zone = models.CharField(max_length=64, default="UTC")
    description = models.TextField(blank=True)

    class Meta:
        ordering: ClassVar = ["name"]

    def __str__(self) -> str:
        return self.name


class ShiftUnit(models.TextChoices):
    HOURS = "hours", "Hours"
    DAYS = "days", "Days"
    WEEKS = "weeks", "Weeks"


class Rotation(models.Model):
    """Participants take turns, handing off every ``shift_length`` ``shift_unit``.

    ``start`` is the first handoff; its wall-clock time in the schedule's time
    zone is the handoff time of every day/week shift, across DST changes.
    """

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="rotations")
    name = models.CharField(max_length=100)
    start = models.DateTimeField()
    shift_length = models.PositiveIntegerField(default=1)
    shift_unit = models.CharField(max_length=5, choices=ShiftUnit.choices, default=ShiftUnit.WEEKS)

    class Meta:
        ordering: ClassVar = ["schedule", "pk"]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(shift_length__gte=1), name="rotation_shift_positive"
            ),
            models.CheckConstraint(
                condition=Q(shift_unit__in=ShiftUnit.values), name="rotation_unit_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.schedule}: {self.name}"


class RotationMember(models.Model):
    rotation = models.ForeignKey(Rotation, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering: ClassVar = ["rotation", "position", "pk"]

    def __str__(self) -> str:
        return f"{self.user} in {self.rotation}"


class Override(models.Model):
    """``user`` is on call for the schedule from ``start`` to ``end``.

    Overrides may overlap: the most recently created one covering a moment
    wins, so a short override of an override (someone covering an hour of a
    swapped shift) needs no special case.
    """

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="overrides")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    start = models.DateTimeField()
    end = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["schedule", "start"]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(end__gt=F("start")), name="override_ends_after_start"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} on {self.schedule} from {self.start:%Y-%m-%d %H:%M}"


class EscalationPolicy(models.Model):
    name = models.CharField(max_length=100, unique=True)
    # How many more times the levels are paged from the top after the last
    # one; after that the incident stays at the last level.
    repeat_count = models.PositiveSmallIntegerField(default=0)

    class Meta:
        verbose_name_plural = "escalation policies"
        ordering: ClassVar = ["name"]

    def __str__(self) -> str:
        return self.name


class EscalationLevel(models.Model):
    policy = models.ForeignKey(EscalationPolicy, on_delete=models.CASCADE, related_name="levels")
    position = models.PositiveSmallIntegerField(default=0)
    # Minutes to wait for an acknowledgement before paging the next level.
    delay_minutes = models.PositiveIntegerField(default=15)
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    schedules = models.ManyToManyField(Schedule, blank=True, related_name="+")

    class Meta:
        ordering: ClassVar = ["policy", "position", "pk"]
        constraints: ClassVar = [
            models.CheckConstraint(condition=Q(delay_minutes__gte=1), name="level_delay_positive")
        ]

    def __str__(self) -> str:
        return f"{self.policy} level {self.position}"


class MaintenanceWindow(models.Model):
    """While one covers its service, incidents are recorded but nobody is paged."""

    service = models.ForeignKey(
        "incidents.Service", on_delete=models.CASCADE, related_name="maintenance_windows"
    )
    start = models.DateTimeField()
    end = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering: ClassVar = ["-start"]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(end__gt=F("start")), name="maintenance_ends_after_start"
            )
        ]

    def __str__(self) -> str:
        return f"{self.service} maintenance {self.start:%Y-%m-%d %H:%M}"


class PageStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"  # acknowledged or resolved before it was due


class Page(models.Model):
    """One notification attempt to one contact method."""

    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.CASCADE, related_name="pages"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    contact_method = models.ForeignKey(
        ContactMethod, null=True, on_delete=models.SET_NULL, related_name="pages"
    )
    channel = models.CharField(max_length=30)
    level = models.PositiveSmallIntegerField()
    # The incident's escalation step that paged: the pages of the current
    # step are who is paged now and how each delivery went.
    step = models.PositiveIntegerField(default=0)
    attempt = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=10, choices=PageStatus.choices, default=PageStatus.QUEUED)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    due_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["created_at", "pk"]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(status__in=PageStatus.values), name="page_status_valid"
            )
        ]
        indexes: ClassVar = [
            models.Index(fields=["incident", "created_at"]),
            # Delivery per person paged now: the pages of an incident's step.
            models.Index(fields=["incident", "step"], name="page_incident_step"),
            # Reconciliation looks for pages whose task was lost; only pages
            # not yet sent are in this index, so the look stays cheap.
            models.Index(
                fields=["status", "due_at"],
                condition=Q(status__in=["queued", "sending"]),
                name="page_pending",
            ),
            # On-call health reads today's pages live (insights.rolled): a
            # range of created_at, not a pass over every page ever sent.
            models.Index(fields=["created_at"], name="page_created_at"),
        ]

    def __str__(self) -> str:
        return f"page #{self.pk} {self.channel} {self.status}"


class LinkAction(models.TextChoices):
    """What a signed link in a page's message does (``paging.links``)."""

    ACKNOWLEDGE = "acknowledge", "Acknowledge"
    RESOLVE = "resolve", "Resolve"
    ESCALATE = "escalate", "Escalate"


class UsedActionLink(models.Model):
    """A signed link from a notification that has acted once already.

    Each message carries its own random nonce; its Acknowledge, Resolve and
    Escalate links share it, so each of them works once. The unique
    constraint is what makes a link single use under concurrency: two POSTs
    of the same link both insert this row in their transaction, PostgreSQL
    makes the second insert wait for the first transaction, and then fails it
    with a unique violation (or lets it through if the first rolled back, in
    which case the first did not act either).
    """

    nonce = models.CharField(max_length=32)
    action = models.CharField(max_length=12, choices=LinkAction.choices)
    incident = models.ForeignKey("incidents.Incident", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    used_at = models.DateTimeField()

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["nonce", "action"], name="action_link_used_once"),
            models.CheckConstraint(
                condition=Q(action__in=LinkAction.values), name="action_link_action_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} link {self.nonce} used by {self.user_id}"


class CoverStatus(models.TextChoices):
    PENDING = "pending", "Waiting for an answer"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    CANCELLED = "cancelled", "Cancelled"


class CoverRequest(models.Model):
    """``requester`` asks ``asked`` (or, when empty, anyone on the schedule's
    rotations) to be on call for the schedule from ``start`` to ``end``.

    Nothing changes on the schedule until someone accepts: accepting writes an
    ``Override`` for them (``paging.shifts.accept_cover``). Only a pending
    request moves, and only once (a conditional update on ``status``).
    """

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="cover_requests")
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    asked = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    start = models.DateTimeField()
    end = models.DateTimeField()
    note = models.CharField(max_length=200, blank=True)
    status = models.CharField(
        max_length=10, choices=CoverStatus.choices, default=CoverStatus.PENDING
    )
    created_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    override = models.ForeignKey(
        Override, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering: ClassVar = ["start", "pk"]
        constraints: ClassVar = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="cover_ends_after_start"),
            models.CheckConstraint(
                condition=Q(status__in=CoverStatus.values), name="cover_status_valid"
            ),
        ]
        indexes: ClassVar = [
            # "My shifts" lists the pending requests a person may answer.
            models.Index(
                fields=["schedule", "start"],
                condition=Q(status="pending"),
                name="cover_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"cover {self.schedule} from {self.start:%Y-%m-%d %H:%M} ({self.status})"


class ShiftChange(models.Model):
    """The audit trail of on-call changes made by people: who, when, what.

    Written by ``paging.shifts`` in the transaction of the change itself, so
    an audit row exists exactly when the change does.
    """

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="changes")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField()
    what = models.CharField(max_length=300)
    cover_request = models.ForeignKey(
        CoverRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="changes"
    )
    override = models.ForeignKey(
        Override, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering: ClassVar = ["-at", "-pk"]
        indexes: ClassVar = [models.Index(fields=["schedule", "-at"], name="shift_change_recent")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.what}"
