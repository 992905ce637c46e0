"""The only code that changes post-mortems and their action items.

Each function is one transaction. Side effects (the publication notice) are
deferred with ``transaction.on_commit``; notes on the incident's timeline go
through ``incidents.services.add_note`` inside the same transaction, so a
follow-up is never recorded without its note or the other way round.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from incidents import selectors as incident_selectors
from incidents import services as incident_services
from incidents.models import Incident, Status
from postmortems import drafting, tasks, vocabulary
from postmortems.errors import (
    FollowupConflict,
    IncidentStillOpen,
    InvalidActionItem,
    InvalidPostMortemTransition,
    PublishingNotAllowed,
)
from postmortems.markdown_tables import normalize_text
from postmortems.models import TRANSITIONS, ActionItem, ActionStatus, PostMortem, PostMortemStatus

# Who acts: a user, an anonymous visitor or None for the system (a command).
Actor = AbstractBaseUser | AnonymousUser | None
COMMIT_SHA = re.compile(r"^[0-9a-f]{7,40}$")
EDITABLE_FIELDS = frozenset(
    {
        "title",
        "owner",
        "affected_services",
        "summary",
        "impact",
        "timeline",
        "root_cause_chain",
        "lessons",
    }
)


def _user(actor: Actor) -> Any:
    return actor if actor is not None and actor.is_authenticated else None


def _name(actor: Actor) -> str:
    user = _user(actor)
    return user.get_username() if user else "triage"


@dataclass(frozen=True)
class Drafted:
    post_mortem: PostMortem
    created: bool


def draft_postmortem(incident: Incident, *, actor: Actor) -> Drafted:
    """The incident's post-mortem: the existing one, or a new draft.

    Precondition: the incident is resolved (``IncidentStillOpen`` otherwise),
    unless a post-mortem exists already, which is returned as it is.

    Concurrency: two requests drafting the same incident both try to insert;
    the OneToOne's unique index lets one win. The loser's insert waits for
    the winner's commit, fails, rolls back to its savepoint and returns the
    winner's row. A slug taken by another post-mortem gets the incident
    number appended instead.
    """
    existing = PostMortem.objects.filter(incident=incident).first()
    if existing is not None:
        return Drafted(existing, created=False)
    incident = incident_selectors.incident_detail(incident.pk)
    if incident.status != Status.RESOLVED or incident.resolved_at is None:
        raise IncidentStillOpen(
            f"Incident #{incident.pk} is {incident.get_status_display().lower()}; "
            "resolve it before drafting its post-mortem."
        )
    fields = drafting.draft_fields(incident, incident_selectors.timeline(incident))
    base = drafting.base_slug(incident)
    slugs = [base, f"{base}-{incident.pk}", f"{base}-{incident.pk}-{timezone.now():%H%M%S%f}"]
    if PostMortem.objects.filter(slug=base).exists():
        slugs.pop(0)
    for slug in slugs:
        try:
            with transaction.atomic():
                created = PostMortem.objects.create(
                    incident=incident, slug=slug, owner=_user(actor), **fields
                )
            return Drafted(created, created=True)
        except IntegrityError:
            winner = PostMortem.objects.filter(incident=incident).first()
            if winner is not None:
                return Drafted(winner, created=False)
            # Not the incident: the slug was taken meanwhile; try the next one.
    raise AssertionError("unreachable: the last slug is unique")  # pragma: no cover


def update_postmortem(post_mortem: PostMortem, *, actor: Actor, **changes: Any) -> PostMortem:
    """Change the written parts (title, owner, services, sections, root-cause chain).

    Any status; a published post-mortem stays published and shows the change.
    """
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise TypeError(f"not editable here: {', '.join(sorted(unknown))}")
    if "root_cause_chain" in changes:
        changes["root_cause_chain"] = [
            normalize_text(str(step)) for step in changes["root_cause_chain"] if str(step).strip()
        ]
    with transaction.atomic():
        locked = PostMortem.objects.select_for_update().get(pk=post_mortem.pk)
        for field, value in changes.items():
            setattr(locked, field, value)
        locked.save()
    return locked


PUBLISH_PERMISSION = "postmortems.publish_postmortem"


def may_publish(actor: Actor) -> bool:
    """Staff, or people given the publish permission in the admin. The system
    (``actor=None``: a command run by an operator) may too."""
    if actor is None:
        return True
    user = _user(actor)
    return bool(user is not None and (user.is_staff or user.has_perm(PUBLISH_PERMISSION)))


def change_postmortem_status(
    post_mortem: PostMortem, status: str, *, actor: Actor, now: datetime | None = None
) -> PostMortem:
    """Draft ↔ in review → published (→ in review to retract).

    Publishing needs ``may_publish`` (``PublishingNotAllowed`` otherwise,
    nothing changed); it stamps ``published_at``, notes it on the incident's
    timeline and, when ``POSTMORTEM_NOTIFY_URL`` is set, sends the notice
    after commit. Anyone may retract (published → in review).
    """
    if status == PostMortemStatus.PUBLISHED and not may_publish(actor):
        raise PublishingNotAllowed(
            "Only staff or people with the “Can publish post-mortems” permission may "
            "publish: a published post-mortem is public. Ask one of them to review and "
            "publish it."
        )
    now = now or timezone.now()
    with transaction.atomic():
        locked = (
            PostMortem.objects.select_for_update(of=("self",))
            .select_related("incident")
            .get(pk=post_mortem.pk)
        )
        if status not in TRANSITIONS[locked.status]:
            raise InvalidPostMortemTransition(
                f"The post-mortem is {locked.get_status_display().lower()}; "
                f"it cannot become {PostMortemStatus(status).label.lower()}."
            )
        locked.status = status
        locked.published_at = now if status == PostMortemStatus.PUBLISHED else None
        locked.save()
        if status == PostMortemStatus.PUBLISHED:
            incident_services.add_note(
                locked.incident,
                actor=actor,
                text=f"Post-mortem published: {settings.BASE_URL}{locked.get_absolute_url()}",
                now=now,
            )
            if settings.POSTMORTEM_NOTIFY_URL:
                transaction.on_commit(
                    partial(tasks.notify_postmortem_published.delay, locked.pk), robust=True
                )
    return locked


def _checked_item_fields(*, priority: str, action: str, type: str, details: str) -> dict[str, str]:
    canonical_type = vocabulary.canonical_type(type)
    if canonical_type is None:
        raise InvalidActionItem(vocabulary.unknown_type_message(type))
    canonical_priority = vocabulary.canonical_priority(priority)
    if canonical_priority is None:
        raise InvalidActionItem(f"Unknown priority {priority!r}. Use P0, P1, P2 or P3.")
    action = normalize_text(action).replace("\n", " ")
    if not action:
        raise InvalidActionItem("An action item needs an action.")
    return {
        "priority": canonical_priority,
        "action": action,
        "type": canonical_type,
        "details": normalize_text(details),
    }


def add_action_item(
    post_mortem: PostMortem,
    *,
    actor: Actor,
    priority: str,
    action: str,
    type: str,
    details: str = "",
    owner: Any = None,
) -> ActionItem:
    """Append an action item (status TODO) to the Prevention Plan."""
    fields = _checked_item_fields(priority=priority, action=action, type=type, details=details)
    with transaction.atomic():
        # Locking the post-mortem serialises appends, so positions stay unique.
        PostMortem.objects.select_for_update().get(pk=post_mortem.pk)
        last = post_mortem.action_items.aggregate(last=Max("position"))["last"]
        return ActionItem.objects.create(
            post_mortem=post_mortem,
            position=(last or 0) + 1,
            owner=owner,
            **fields,
        )


def update_action_item(
    item: ActionItem,
    *,
    actor: Actor,
    priority: str,
    action: str,
    type: str,
    details: str,
    owner: Any = None,
) -> ActionItem:
    fields = _checked_item_fields(priority=priority, action=action, type=type, details=details)
    with transaction.atomic():
        locked = ActionItem.objects.select_for_update().get(pk=item.pk)
        for field, value in fields.items():
            setattr(locked, field, value)
        locked.owner = owner
        locked.save()
    return locked


def _lock_item(item: ActionItem) -> ActionItem:
    return (
        ActionItem.objects.select_for_update(of=("self",))
        .select_related("post_mortem__incident")
        .get(pk=item.pk)
    )


def _reference(item: ActionItem) -> str:
    return " ".join(part for part in (item.commit[:12], item.link) if part) or "no commit"


def _note_done(item: ActionItem, *, actor: Actor, now: datetime) -> None:
    incident_services.add_note(
        item.post_mortem.incident,
        actor=actor,
        text=(
            f"Follow-up done: {item.priority} {item.action} ({item.type}) — "
            f"{_reference(item)}, by {item.implemented_by}."
        ),
        now=now,
    )


def change_action_status(
    item: ActionItem, status: str, *, actor: Actor, now: datetime | None = None
) -> ActionItem:
    """Set TODO / In progress / Done / Won't do.

    Done without a commit records the actor as the implementer and notes it
    on the incident; leaving Done forgets when, by whom and with what.
    """
    if status not in ActionStatus.values:
        raise InvalidActionItem(
            f"Unknown status {status!r}. Use one of: {', '.join(ActionStatus.values)}."
        )
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock_item(item)
        if locked.status == status:
            return locked
        locked.status = status
        if status == ActionStatus.DONE:
            locked.done_at = now
            locked.implemented_by = locked.implemented_by or _name(actor)
            locked.save()
            _note_done(locked, actor=actor, now=now)
            return locked
        locked.done_at = None
        locked.commit = locked.link = locked.implemented_by = ""
        locked.save()
    return locked


@dataclass(frozen=True)
class Recorded:
    item: ActionItem
    created: bool  # False: the same follow-up was already recorded


def record_followup(
    item: ActionItem,
    *,
    actor: Actor,
    implemented_by: str,
    commit: str = "",
    link: str = "",
    now: datetime | None = None,
) -> Recorded:
    """Mark an action item done by a commit and/or link.

    It then appears in the Follow-up Implementation table, and a note lands
    on the incident's timeline. Safe to repeat: recording the same commit and
    link again changes nothing (``created=False``); a different one for an
    item already done is a ``FollowupConflict``.
    """
    commit = commit.strip().lower()
    link = link.strip()
    implemented_by = " ".join(implemented_by.split())
    if not commit and not link:
        raise InvalidActionItem("Give the commit SHA or a link to the change.")
    if commit and not COMMIT_SHA.match(commit):
        raise InvalidActionItem(f"{commit!r} is not a commit SHA (7 to 40 hexadecimal characters).")
    if not implemented_by:
        raise InvalidActionItem("Say who implemented it (a person or the automation's name).")
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock_item(item)
        if locked.status == ActionStatus.DONE:
            if (locked.commit, locked.link) == (commit, link):
                return Recorded(locked, created=False)
            raise FollowupConflict(
                f"{locked.action!r} was already done ({_reference(locked)}, by "
                f"{locked.implemented_by}); set it back to TODO first to record another change."
            )
        locked.status = ActionStatus.DONE
        locked.commit, locked.link, locked.implemented_by = commit, link, implemented_by[:100]
        locked.done_at = now
        locked.save()
        _note_done(locked, actor=actor, now=now)
    return Recorded(locked, created=True)
