"""Reads for "My shifts" and the schedule's changes (``paging.shifts`` writes)."""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db.models import Count, Exists, Min, OuterRef, Q, QuerySet
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from paging import oncall
from paging.models import CoverRequest, CoverStatus, RotationMember, Schedule, ShiftChange
from triage import readmodel

logger = logging.getLogger(__name__)

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
    every full page. Cached per person under the settings' version, so a
    page costs one Redis round trip, not a query, until something changes.

    Why the cached count cannot be wrong: every write to what ``_waiting``
    reads (cover requests, rotations and their members, schedules) bumps
    the settings' version after its commit (``paging.freshness``, and
    ``paging.shifts`` for its conditional updates), and the entry is tagged
    with the version read *before* the count, so a count read across a
    change carries the older tag and is read again next time. Time only
    takes requests away (``end__gt=now``): the entry says from when and
    until when (the earliest end it counted) it holds. Without Redis, every
    page counts in PostgreSQL.
    """
    key = f"triage:covers:waiting:{user.pk}"
    try:
        current, entry = readmodel.settings_version_and(key)
    except (RedisError, OSError):
        return _waiting(user, now=now).count()
    found = _read_entry(entry, current, now)
    if found is not None:
        return found
    counted = _waiting(user, now=now).aggregate(count=Count("pk"), until=Min("end"))
    until = counted["until"].timestamp() if counted["until"] else math.inf
    try:
        get_redis_connection("default").set(
            key, f"{current}:{counted['count']}:{now.timestamp()}:{until}", ex=readmodel.ENTRY_TTL
        )
    except (RedisError, OSError):
        logger.warning("redis unavailable; the cover-request badge was not cached")
    return int(counted["count"])


def _read_entry(entry: bytes | None, current: int, now: datetime) -> int | None:
    """The count in ``entry`` if it was read at ``current`` and holds at ``now``."""
    if entry is None:
        return None
    try:
        version, count, since, until = entry.decode().split(":")
        valid = int(version) == current and float(since) <= now.timestamp() < float(until)
        return int(count) if valid else None
    except ValueError:  # not an entry this code wrote: count again
        return None


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
