"""Post-mortems and their follow-up action items.

A post-mortem belongs to exactly one incident (a OneToOne, so drafting twice —
even concurrently — finds the first draft instead of making a second). Its
facts (when, how long, how bad, which services) are copied from the incident
when it is drafted, so reopening or editing the incident later does not
rewrite a published document.

Choices are enforced by database constraints; ``postmortems.services`` is the
only code that changes statuses.
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import CharField, F, Func, Q
from django.db.models.lookups import Exact
from django.urls import reverse

from incidents.models import Incident, Severity
from postmortems import vocabulary


class PostMortemStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    IN_REVIEW = "in_review", "In review"
    PUBLISHED = "published", "Published"


# Which status may follow which. Published → in review retracts a document.
TRANSITIONS: dict[str, frozenset[str]] = {
    PostMortemStatus.DRAFT: frozenset({PostMortemStatus.IN_REVIEW, PostMortemStatus.PUBLISHED}),
    PostMortemStatus.IN_REVIEW: frozenset({PostMortemStatus.DRAFT, PostMortemStatus.PUBLISHED}),
    PostMortemStatus.PUBLISHED: frozenset({PostMortemStatus.IN_REVIEW}),
}


class Priority(models.TextChoices):
    P0 = "P0", "P0"
    P1 = "P1", "P1"
    P2 = "P2", "P2"
    P3 = "P3", "P3"


# The same words as postmortems.vocabulary.TYPES (a test holds them equal),
# spelled as they appear in the Markdown tables.
class ActionType(models.TextChoices):
    ALERT = "Alert", "Alert"
    CONFIG = "Config", "Config"
    MONITOR = "Monitor", "Monitor"
    ARCHITECTURE = "Architecture", "Architecture"
    INVESTIGATION = "Investigation", "Investigation"
    MIGRATION = "Migration", "Migration"
    RUNBOOK = "Runbook", "Runbook"


class ActionStatus(models.TextChoices):
    TODO = "todo", "TODO"
    IN_PROGRESS = "in_progress", "In progress"
    DONE = "done", "Done"
    WONT_DO = "wont_do", "Won't do"


class PostMortem(models.Model):
    incident = models.OneToOneField(Incident, on_delete=models.PROTECT, related_name="postmortem")
    title = models.CharField(max_length=200)
    # Fixed when drafted: it names the exported file and must not move when
    # the title is reworded.
    slug = models.SlugField(max_length=80, unique=True)
    status = models.CharField(
        max_length=12, choices=PostMortemStatus.choices, default=PostMortemStatus.DRAFT
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    severity = models.CharField(max_length=10, choices=Severity.choices)
    affected_services = models.CharField(max_length=300)

    summary = models.TextField(blank=True)
    impact = models.TextField(blank=True)
    timeline = models.TextField(blank=True)
    # Ordered steps, each "this caused the next": a JSON array of strings.
    root_cause_chain = models.JSONField(default=list, blank=True)
    lessons = models.TextField(blank=True)

    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["-started_at", "pk"]
        # Staff may always publish; anyone else needs this, given in the admin.
        permissions: ClassVar = [("publish_postmortem", "Can publish post-mortems")]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(status__in=PostMortemStatus.values), name="postmortem_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(severity__in=Severity.values), name="postmortem_severity_valid"
            ),
            # Published exactly when it has a publication time: the public
            # index and status page filter on status, the export sorts on time.
            models.CheckConstraint(
                condition=Q(status=PostMortemStatus.PUBLISHED, published_at__isnull=False)
                | (~Q(status=PostMortemStatus.PUBLISHED) & Q(published_at__isnull=True)),
                name="postmortem_published_has_time",
            ),
            models.CheckConstraint(
                condition=Q(ended_at__gte=F("started_at")), name="postmortem_ends_after_start"
            ),
            models.CheckConstraint(
                condition=Exact(
                    Func(F("root_cause_chain"), function="jsonb_typeof", output_field=CharField()),
                    "array",
                ),
                name="postmortem_root_cause_chain_is_list",
            ),
        ]

    def __str__(self) -> str:
        return f"Post-mortem: {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("postmortem-detail", args=[self.pk])

    @property
    def is_published(self) -> bool:
        return self.status == PostMortemStatus.PUBLISHED

    @property
    def duration(self) -> timedelta:
        return self.ended_at - self.started_at


class ActionItem(models.Model):
    post_mortem = models.ForeignKey(
        PostMortem, on_delete=models.CASCADE, related_name="action_items"
    )
    position = models.PositiveIntegerField(default=0)
    priority = models.CharField(max_length=2, choices=Priority.choices, default=Priority.P2)
    action = models.CharField(max_length=200)
    type = models.CharField(max_length=13, choices=ActionType.choices)
    details = models.TextField(blank=True)
    status = models.CharField(
        max_length=11, choices=ActionStatus.choices, default=ActionStatus.TODO
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    commit = models.CharField(max_length=40, blank=True)
    link = models.URLField(max_length=500, blank=True)
    # Free text: a person or the automation that did it ("postmortem-bot").
    implemented_by = models.CharField(max_length=100, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["position", "pk"]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(priority__in=vocabulary.PRIORITIES), name="action_item_priority_valid"
            ),
            models.CheckConstraint(
                condition=Q(type__in=vocabulary.TYPES), name="action_item_type_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=ActionStatus.values), name="action_item_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status=ActionStatus.DONE, done_at__isnull=False)
                | (~Q(status=ActionStatus.DONE) & Q(done_at__isnull=True)),
                name="action_item_done_has_time",
            ),
            models.CheckConstraint(
                condition=Q(commit="") | Q(commit__regex=r"^[0-9a-f]{7,40}$"),
                name="action_item_commit_is_sha",
            ),
        ]
        indexes: ClassVar = [models.Index(fields=["post_mortem", "position"])]

    def __str__(self) -> str:
        return f"{self.priority} {self.action}"

    @property
    def safe(self) -> bool:
        """Automatable: derived from the type, never stored."""
        return vocabulary.is_safe(self.type)

    @property
    def is_pending(self) -> bool:
        return self.status in vocabulary.PENDING_STATUSES
