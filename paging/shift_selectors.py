"""Reads for "My shifts" and the schedule's changes (``paging.shifts`` writes)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db.models import Exists, OuterRef, Q, QuerySet

from paging import oncall
from paging.models import CoverRequest, CoverStatus, RotationMember, Schedule, ShiftChange

RECENT = timedelta(days=14)


def my_shifts(user: User, *, start: datetime, end: datetime) -> list[tuple[Schedule, oncall.Shift]]:
    """The user's final shifts (overrides applied) on every schedule they may be on."""
    schedules = Schedule.objects.filter(
        Q(rotations__members__user=user) | Q(overrides__user=user, overrides__end__gt=start)
    ).distinct()
    found = [
        (schedule, shift)
        for schedule in schedules.order_by("name")
        for shift in oncall.shifts(schedule, start=start, end=end)
        if shift.user.pk == user.pk
    ]
    return sorted(found, key=lambda pair: pair[1].start)


def _requests() -> QuerySet[CoverRequest]:
    return CoverRequest.objects.select_related("schedule", "requester", "asked", "decided_by")


def _waiting(user: User, *, now: datetime) -> QuerySet[CoverRequest]:
    """Pending requests the user may answer: asked by name, or asked of a
    rotation they are on by someone else. Membership is an EXISTS, not a
    join, so a request counts once however many rotations hold the user."""
    on_rotation = Exists(
        RotationMember.objects.filter(rotation__schedule=OuterRef("schedule"), user=user)
    )
    mine = Q(asked=user) | Q(asked__isnull=True) & on_rotation & ~Q(requester=user)
    # Pending rows only: read through the partial index cover_pending.
    return CoverRequest.objects.filter(mine, status=CoverStatus.PENDING, end__gt=now)


def waiting_for(user: User, *, now: datetime) -> list[CoverRequest]:
    """The requests ``waiting_count`` counts, to answer on "My shifts"."""
    pending = _waiting(user, now=now).select_related("schedule", "requester", "asked", "decided_by")
    return list(pending.order_by("start", "pk"))


def waiting_count(user: User, *, now: datetime) -> int:
    """How many requests wait for the user's answer: the header's badge, on
    every full page, so one small COUNT over the pending rows."""
    return _waiting(user, now=now).count()


def asked_by(user: User, *, now: datetime) -> list[CoverRequest]:
    """The user's own requests: pending ones, and those answered lately."""
    recent = Q(status=CoverStatus.PENDING, end__gt=now) | Q(decided_at__gte=now - RECENT)
    return list(_requests().filter(recent, requester=user).order_by("start", "pk"))


def pending_on(schedules: list[Schedule], *, now: datetime) -> dict[int, list[CoverRequest]]:
    """Each schedule's unanswered requests, for the on-call page."""
    found: dict[int, list[CoverRequest]] = {}
    pending = _requests().filter(schedule__in=schedules, status=CoverStatus.PENDING, end__gt=now)
    for cover in pending.order_by("start", "pk"):
        found.setdefault(cover.schedule_id, []).append(cover)
    return found


def recent_changes(schedules: list[Schedule], *, now: datetime) -> dict[int, list[ShiftChange]]:
    """Each schedule's changes by people over the last two weeks, newest first."""
    found: dict[int, list[ShiftChange]] = {}
    changes = ShiftChange.objects.filter(schedule__in=schedules, at__gte=now - RECENT)
    for change in changes.select_related("actor").order_by("-at", "-pk")[:200]:
        found.setdefault(change.schedule_id, []).append(change)
    return found


def changes_for(user: User, *, now: datetime) -> list[ShiftChange]:
    """Lately, changes on the schedules the user is on."""
    schedules = Schedule.objects.filter(
        Q(rotations__members__user=user) | Q(overrides__user=user)
    ).values("pk")
    changes = ShiftChange.objects.filter(schedule__in=schedules, at__gte=now - RECENT)
    return list(changes.select_related("schedule", "actor").order_by("-at", "-pk")[:50])
