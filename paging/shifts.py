"""Responders change who is on call: take a shift, ask to be covered, answer.

Every change is one transaction that writes the change and its audit row
(``ShiftChange``: who, when, what) together. Staff may do everything; the
admin keeps full editing of schedules and overrides besides these verbs.

Concurrency. Each verb that writes an ``Override`` first locks the
schedule's row (``SELECT ... FOR UPDATE``), so overrides of one schedule are
written one after another: when two people take the same shift at once, the
second waits for the first to commit, then sees its override and is refused
instead of writing a second one. A cover request moves out of ``pending``
only through a conditional ``UPDATE ... WHERE status = 'pending'``: of two
answers at once (an accept and a cancel, two accepts of a request to the
whole rotation) exactly one updates a row, the other finds 0 rows and is told
the request was already answered.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import QuerySet

from paging.models import CoverRequest, CoverStatus, Override, Schedule, ShiftChange
from triage import readmodel
from triage.celery import app as celery_app

# Longer changes are the admin's business (a new rotation, not an override).
LONGEST = timedelta(days=31)


class ShiftRefused(Exception):
    """The change cannot be made as asked; the message says why, for people."""

    status = 409


class NotAllowed(ShiftRefused):
    status = 403


def display_name(user: User) -> str:
    """ "Ana Lima (ana)", or the username alone when no name is set."""
    full = user.get_full_name()
    return f"{full} ({user.get_username()})" if full else user.get_username()


def members(schedule: Schedule) -> QuerySet[User]:
    """Everyone on one of the schedule's rotations."""
    return User.objects.filter(
        pk__in=schedule.rotations.values("members__user"), is_active=True
    ).order_by("first_name", "last_name", "username")


def is_member(user: User, schedule: Schedule) -> bool:
    return members(schedule).filter(pk=user.pk).exists()


def span(schedule: Schedule, start: datetime, end: datetime) -> str:
    """The range in the schedule's own time zone, labelled with it."""
    zone = ZoneInfo(schedule.time_zone)
    left, right = start.astimezone(zone), end.astimezone(zone)
    return f"{left:%a %Y-%m-%d %H:%M} to {right:%a %Y-%m-%d %H:%M} ({schedule.time_zone})"


def _check_range(start: datetime, end: datetime, now: datetime) -> None:
    if end <= start:
        raise ShiftRefused("The end must be after the start.")
    if end <= now:
        raise ShiftRefused("This time is already over.")
    if end - start > LONGEST:
        raise ShiftRefused("At most 31 days at once: staff can change the rotation in the admin.")


def _audit(
    schedule: Schedule,
    actor: User,
    what: str,
    now: datetime,
    *,
    cover: CoverRequest | None = None,
    override: Override | None = None,
) -> None:
    ShiftChange.objects.create(
        schedule=schedule, actor=actor, at=now, what=what, cover_request=cover, override=override
    )


def _lock(schedule: Schedule) -> Schedule:
    return Schedule.objects.select_for_update().get(pk=schedule.pk)


def _refuse_if_taken(
    schedule: Schedule, start: datetime, end: datetime, *, by_other_than: list[User]
) -> None:
    """Refuse a range someone else already holds by an override (the caller
    holds the schedule lock, so no override can appear meanwhile)."""
    taken = (
        Override.objects.filter(schedule=schedule, start__lt=end, end__gt=start)
        .exclude(user__in=by_other_than)
        .select_related("user")
        .first()
    )
    if taken is not None:
        raise ShiftRefused(
            f"{display_name(taken.user)} already took {span(schedule, taken.start, taken.end)}: "
            "ask them to cover you instead."
        )


@transaction.atomic
def take_shift(
    schedule: Schedule, *, actor: User, start: datetime, end: datetime, now: datetime
) -> Override:
    """Put ``actor`` on call for the schedule from ``start`` (or now, if that
    is past) to ``end``, as an override.

    Only a member of one of the schedule's rotations (or staff) may; a range
    someone else already took by an override is refused, so a shift is never
    taken twice (the schedule lock, see the module docstring).
    """
    _check_range(start, end, now)
    if not (actor.is_staff or is_member(actor, schedule)):
        raise NotAllowed(f"You are not on a rotation of {schedule.name}.")
    locked = _lock(schedule)
    start = max(start, now)
    _refuse_if_taken(locked, start, end, by_other_than=[actor])
    override = Override.objects.create(schedule=locked, user=actor, start=start, end=end)
    what = f"{display_name(actor)} took {locked.name} {span(locked, start, end)}"
    _audit(locked, actor, what, now, override=override)
    return override


@transaction.atomic
def ask_cover(
    schedule: Schedule,
    *,
    actor: User,
    start: datetime,
    end: datetime,
    asked: User | None,
    now: datetime,
    note: str = "",
) -> CoverRequest:
    """Ask ``asked`` (or, with None, anyone on the schedule's rotations) to be
    on call instead of ``actor`` from ``start`` to ``end``. Nothing changes on
    the schedule until someone accepts. The people asked are notified
    through their first contact method after commit."""
    _check_range(start, end, now)
    if not (actor.is_staff or is_member(actor, schedule)):
        raise NotAllowed(f"You are not on a rotation of {schedule.name}.")
    if asked is not None and (asked.pk == actor.pk or not is_member(asked, schedule)):
        raise ShiftRefused(f"Ask someone else on a rotation of {schedule.name}.")
    cover = CoverRequest.objects.create(
        schedule=schedule,
        requester=actor,
        asked=asked,
        start=start,
        end=end,
        note=note,
        created_at=now,
    )
    # The people asked hear of it once the request is committed (paging.tasks).
    transaction.on_commit(lambda: celery_app.send_task("paging.tell_about_cover", [cover.pk]))
    whom = display_name(asked) if asked else "anyone on the rotation"
    what = (
        f"{display_name(actor)} asked {whom} to cover {schedule.name} {span(schedule, start, end)}"
    )
    _audit(schedule, actor, what, now, cover=cover)
    return cover


def may_answer(cover: CoverRequest, user: User) -> bool:
    """The person asked; for a request to the whole rotation, any member but
    the requester; staff always."""
    if user.is_staff or cover.asked_id == user.pk:
        return True
    if cover.asked_id is not None or cover.requester_id == user.pk:
        return False
    return is_member(user, cover.schedule)


def _settle(cover: CoverRequest, status: CoverStatus, actor: User, now: datetime) -> None:
    """Move a pending request to ``status``, or refuse if it was answered."""
    moved = CoverRequest.objects.filter(pk=cover.pk, status=CoverStatus.PENDING).update(
        status=status, decided_by=actor, decided_at=now
    )
    if not moved:
        current = CoverRequest.objects.get(pk=cover.pk).get_status_display().lower()
        raise ShiftRefused(f"This request was already answered: {current}.")
    cover.status, cover.decided_by, cover.decided_at = status, actor, now
    # A conditional update sends no signal: the header's badge is cached
    # under the settings' version (paging.shift_selectors.waiting_count).
    readmodel.bump_settings_after_commit()


@transaction.atomic
def accept_cover(cover: CoverRequest, *, actor: User, now: datetime) -> Override:
    """``actor`` covers the request: an override puts them on call for its
    range (from now, if it has begun)."""
    if not may_answer(cover, actor):
        raise NotAllowed("Only the person asked can accept this request.")
    if cover.end <= now:
        raise ShiftRefused("This request's time is already over.")
    schedule = _lock(cover.schedule)
    start = max(cover.start, now)
    # The requester may have given the time away meanwhile (someone took it).
    _refuse_if_taken(schedule, start, cover.end, by_other_than=[actor, cover.requester])
    _settle(cover, CoverStatus.ACCEPTED, actor, now)
    override = Override.objects.create(schedule=schedule, user=actor, start=start, end=cover.end)
    CoverRequest.objects.filter(pk=cover.pk).update(override=override)
    what = (
        f"{display_name(actor)} covers {display_name(cover.requester)} on {schedule.name} "
        f"{span(schedule, override.start, override.end)}"
    )
    _audit(schedule, actor, what, now, cover=cover, override=override)
    return override


@transaction.atomic
def decline_cover(cover: CoverRequest, *, actor: User, now: datetime) -> None:
    """The person asked says no; the schedule is unchanged. A request to the
    whole rotation is not declined by one member: its requester cancels it."""
    if not (actor.is_staff or (cover.asked_id is not None and cover.asked_id == actor.pk)):
        raise NotAllowed("Only the person asked can decline this request.")
    _settle(cover, CoverStatus.DECLINED, actor, now)
    what = (
        f"{display_name(actor)} declined to cover {display_name(cover.requester)} on "
        f"{cover.schedule.name} {span(cover.schedule, cover.start, cover.end)}"
    )
    _audit(cover.schedule, actor, what, now, cover=cover)


@transaction.atomic
def cancel_cover(cover: CoverRequest, *, actor: User, now: datetime) -> None:
    """The requester (or staff) withdraws a request nobody answered yet."""
    if not (actor.is_staff or cover.requester_id == actor.pk):
        raise NotAllowed("Only the person who asked can cancel this request.")
    _settle(cover, CoverStatus.CANCELLED, actor, now)
    what = (
        f"{display_name(actor)} cancelled the request to cover {cover.schedule.name} "
        f"{span(cover.schedule, cover.start, cover.end)}"
    )
    _audit(cover.schedule, actor, what, now, cover=cover)
