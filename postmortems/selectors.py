"""Reads of post-mortems for pages, the API, commands and tasks. Each brings
its own joins, so a list costs a fixed number of queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from incidents.models import Incident, Status
from postmortems.models import ActionItem, ActionStatus, PostMortem, PostMortemStatus

SUGGESTION_WINDOW = timedelta(days=7)
SUGGESTION_LIMIT = 5


def postmortem_detail(pk: int) -> PostMortem:
    """One post-mortem with its incident; raises PostMortem.DoesNotExist."""
    return PostMortem.objects.select_related("incident__service", "owner").get(pk=pk)


def postmortem_or_none(pk: int) -> PostMortem | None:
    try:
        return postmortem_detail(pk)
    except PostMortem.DoesNotExist:
        return None


def postmortem_for_incident(incident: Incident) -> PostMortem | None:
    return PostMortem.objects.filter(incident=incident).only("pk", "status", "title").first()


def action_items(post_mortem: PostMortem) -> list[ActionItem]:
    return list(post_mortem.action_items.select_related("owner").order_by("position", "pk"))


def action_item(post_mortem_id: int, item_id: int) -> ActionItem:
    """An item of that post-mortem (another post-mortem's item is DoesNotExist)."""
    return ActionItem.objects.select_related("post_mortem__incident").get(
        pk=item_id, post_mortem_id=post_mortem_id
    )


def published_postmortems() -> QuerySet[PostMortem]:
    """Published post-mortems, newest incident first, with follow-up counts."""
    return (
        PostMortem.objects.filter(status=PostMortemStatus.PUBLISHED)
        .select_related("incident")
        .annotate(
            items_total=Count("action_items"),
            items_done=Count("action_items", filter=Q(action_items__status=ActionStatus.DONE)),
        )
        .order_by("-started_at", "-pk")
    )


@dataclass(frozen=True)
class Suggestion:
    """A resolved incident that has no post-mortem yet."""

    pk: int
    title: str
    service_name: str
    resolved_at: datetime


def postmortem_suggestions(now: datetime | None = None) -> list[Suggestion]:
    """Incidents resolved in the last week that have no post-mortem yet, newest first."""
    since = (now or timezone.now()) - SUGGESTION_WINDOW
    rows = (
        # The partial index incident_resolved_at serves the status and time.
        Incident.objects.filter(
            status=Status.RESOLVED, resolved_at__gte=since, postmortem__isnull=True
        )
        .order_by("-resolved_at", "-pk")
        .values_list("pk", "title", "service__name", "resolved_at")[:SUGGESTION_LIMIT]
    )
    return [
        Suggestion(pk=pk, title=title, service_name=service, resolved_at=resolved)
        for pk, title, service, resolved in rows
        if resolved is not None  # always set on a resolved incident (a constraint)
    ]
