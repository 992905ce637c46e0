"""Who is on call when: rotations, overrides, and shifts over a time range.

Day and week shifts hand off at the same wall-clock time in the schedule's
time zone whatever the season, so a 09:00 handoff stays at 09:00 across DST
(the shift that spans the change is an hour shorter or longer). Hour shifts
are absolute durations. Overrides win over rotations; among overlapping
overrides the most recently created wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from django.contrib.auth.models import User
from django.db.models import Prefetch

from paging.models import Override, Rotation, RotationMember, Schedule, ShiftUnit


@dataclass(frozen=True)
class Shift:
    user: User
    start: datetime
    end: datetime
    source: str  # rotation name, or "override"


def _zone(schedule: Schedule) -> ZoneInfo:
    return ZoneInfo(schedule.time_zone)


def _local_handoff(day: date, template: datetime, zone: ZoneInfo) -> datetime:
    """The handoff on ``day`` at ``template``'s wall-clock time in ``zone``."""
    return datetime.combine(day, template.timetz().replace(tzinfo=None), tzinfo=zone)


def rotation_shift_at(rotation: Rotation, members: list[User], at: datetime) -> Shift | None:
    """The rotation's shift covering ``at``, or None before it starts or without members."""
    if not members or at < rotation.start:
        return None
    if rotation.shift_unit == ShiftUnit.HOURS:
        length = timedelta(hours=rotation.shift_length)
        index = int((at - rotation.start) / length)
        start = rotation.start + index * length
        return Shift(members[index % len(members)], start, start + length, rotation.name)
    zone = _zone(rotation.schedule)
    first = rotation.start.astimezone(zone)
    days = rotation.shift_length * (7 if rotation.shift_unit == ShiftUnit.WEEKS else 1)
    local = at.astimezone(zone)
    elapsed = (local.date() - first.date()).days
    if at < _local_handoff(local.date(), first, zone):
        elapsed -= 1  # today's handoff has not happened yet
    index = elapsed // days
    start_day = first.date() + timedelta(days=index * days)
    start = _local_handoff(start_day, first, zone)
    end = _local_handoff(start_day + timedelta(days=days), first, zone)
    return Shift(members[index % len(members)], start, end, rotation.name)


def _rotations(schedule: Schedule) -> list[tuple[Rotation, list[User]]]:
    rotations = schedule.rotations.prefetch_related(
        Prefetch("members", queryset=RotationMember.objects.select_related("user"))
    )
    return [(rotation, [m.user for m in rotation.members.all()]) for rotation in rotations]


def _overrides(schedule: Schedule, start: datetime, end: datetime) -> list[Override]:
    return list(
        schedule.overrides.filter(start__lt=end, end__gt=start)
        .select_related("user")
        .order_by("-created_at", "-pk")
    )


def who_is_on_call(schedule: Schedule, *, at: datetime) -> list[User]:
    """Everyone on call for the schedule at ``at`` (one person per rotation)."""
    for override in _overrides(schedule, at, at + timedelta(microseconds=1)):
        return [override.user]
    people: list[User] = []
    for rotation, members in _rotations(schedule):
        shift = rotation_shift_at(rotation, members, at)
        if shift and shift.user not in people:
            people.append(shift.user)
    return people


def shifts(schedule: Schedule, *, start: datetime, end: datetime) -> list[Shift]:
    """The final on-call shifts between ``start`` and ``end``, overrides applied."""
    rotations = _rotations(schedule)
    overrides = _overrides(schedule, start, end)
    # Every moment where the answer may change: handoffs and override edges.
    edges = {start, end}
    for override in overrides:
        edges.update(t for t in (override.start, override.end) if start < t < end)
    for rotation, members in rotations:
        moment = start
        while moment < end:
            shift = rotation_shift_at(rotation, members, moment)
            if shift is None:
                if not members or rotation.start >= end:
                    break
                moment = rotation.start
                edges.add(max(start, moment))
                continue
            edges.add(max(start, shift.start))
            moment = shift.end
            if moment < end:
                edges.add(moment)
    result: list[Shift] = []
    points = sorted(edges)
    for left, right in pairwise(points):
        covering = next((o for o in overrides if o.start <= left < o.end), None)
        if covering is not None:
            people = [(covering.user, "override")]
        else:
            people = []
            for rotation, members in rotations:
                shift = rotation_shift_at(rotation, members, left)
                if shift:
                    people.append((shift.user, rotation.name))
        for user, source in people:
            previous = result[-1] if result else None
            if previous and previous.user == user and previous.end == left:
                # One person's unbroken time is one shift; its source still
                # says an override took part ("primary, then override").
                merged = previous.source
                if not merged.endswith(source):
                    merged = f"{merged}, then {source}"
                result[-1] = Shift(user, previous.start, right, merged)
            else:
                result.append(Shift(user, left, right, source))
    return result


def next_handoff(schedule: Schedule, *, at: datetime) -> Shift | None:
    """The first shift after the one covering ``at`` (who is on call next)."""
    now_people = who_is_on_call(schedule, at=at)
    for shift in shifts(schedule, start=at, end=at + timedelta(days=60)):
        if shift.start > at or shift.user not in now_people:
            return shift
    return None


def on_call_at_many(wanted: set[tuple[int, datetime]]) -> dict[tuple[int, datetime], list[User]]:
    """Who is on call for each (schedule id, moment), for many at once.

    The same answer as ``who_is_on_call`` for each pair, in a fixed number of
    queries however many pairs are asked (lists use it: a dashboard row per
    incident must not cost a query per row).
    """
    if not wanted:
        return {}
    ids = {schedule_id for schedule_id, _ in wanted}
    first = min(at for _, at in wanted)
    last = max(at for _, at in wanted)
    rotations: dict[int, list[tuple[Rotation, list[User]]]] = {}
    members = Prefetch("members", queryset=RotationMember.objects.select_related("user"))
    for rotation in (
        Rotation.objects.filter(schedule_id__in=ids)
        .select_related("schedule")
        .prefetch_related(members)
        .order_by("pk")
    ):
        rotations.setdefault(rotation.schedule_id, []).append(
            (rotation, [member.user for member in rotation.members.all()])
        )
    overrides: dict[int, list[Override]] = {}
    for override in (
        Override.objects.filter(schedule_id__in=ids, start__lte=last, end__gt=first)
        .select_related("user")
        .order_by("-created_at", "-pk")
    ):
        overrides.setdefault(override.schedule_id, []).append(override)
    found: dict[tuple[int, datetime], list[User]] = {}
    for schedule_id, at in wanted:
        covering = next((o for o in overrides.get(schedule_id, []) if o.start <= at < o.end), None)
        if covering is not None:
            found[(schedule_id, at)] = [covering.user]
            continue
        people: list[User] = []
        for rotation, rotation_members in rotations.get(schedule_id, []):
            shift = rotation_shift_at(rotation, rotation_members, at)
            if shift and shift.user not in people:
                people.append(shift.user)
        found[(schedule_id, at)] = people
    return found
