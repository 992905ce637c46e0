"""Who is paged and when the next escalation is, for the pages and APIs."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from django.contrib.auth.models import User
from django.db.models import Prefetch
from django.utils import timezone
from redis.exceptions import RedisError

from incidents.models import EventKind, Incident, Status, TimelineEvent
from incidents.selectors import NextStep, PersonReach
from paging import oncall, state
from paging.models import (
    ContactMethod,
    EscalationLevel,
    MaintenanceWindow,
    Override,
    Page,
    PageStatus,
    RotationMember,
)
from triage import readmodel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PagingSummary:
    level: int
    next_escalation_at: datetime | None
    paged: list[str] = field(default_factory=list)  # usernames paged at the current level
    live: bool = True  # False when read from PostgreSQL because Redis was unavailable


class HasPaging(Protocol):
    """An incident, or a row read for a list, with its durable paging fields."""

    @property
    def pk(self) -> int: ...
    @property
    def escalation_level(self) -> int: ...
    @property
    def next_escalation_at(self) -> datetime | None: ...


def paging_summary(
    incidents: Iterable[HasPaging], *, known_paged: Mapping[int, list[str]] | None = None
) -> dict[int, PagingSummary]:
    """Paging state per incident id for a page of incidents.

    From Redis (one pipelined round trip); incidents Redis does not know, or
    all of them when Redis is down, come from PostgreSQL: the names in
    ``known_paged`` when the caller's query brought them, else one query.
    """
    incidents = list(incidents)
    try:
        live = state.read_live([incident.pk for incident in incidents])
    except (RedisError, OSError):
        logger.warning("redis unavailable; paging state from PostgreSQL")
        live = {}
    summaries = {
        pk: PagingSummary(level=item.level, next_escalation_at=item.next_at, paged=item.paged)
        for pk, item in live.items()
    }
    missing = [incident for incident in incidents if incident.pk not in live]
    if missing:
        paged = (
            known_paged
            if known_paged is not None
            else _paged_from_timeline([incident.pk for incident in missing])
        )
        for incident in missing:
            summaries[incident.pk] = PagingSummary(
                level=incident.escalation_level,
                next_escalation_at=incident.next_escalation_at,
                paged=paged.get(incident.pk, []),
                live=False,
            )
    return summaries


def _paged_from_timeline(incident_ids: list[int]) -> dict[int, list[str]]:
    """The names in each incident's latest "paged" event, in one query."""
    events = (
        TimelineEvent.objects.filter(incident_id__in=incident_ids, kind=EventKind.PAGED)
        .filter(data__has_key="paged")
        .order_by("incident_id", "-created_at", "-pk")
        .distinct("incident_id")
        .values_list("incident_id", "data")
    )
    return {incident_id: list(data["paged"]) for incident_id, data in events}


# --- delivery per person, and what happens next -----------------------------


class HasEscalation(HasPaging, Protocol):
    """What ``reach`` and ``next_steps`` read of an incident or a dashboard row."""

    @property
    def status(self) -> str: ...
    @property
    def escalation_cycle(self) -> int: ...
    @property
    def escalation_step(self) -> int: ...
    @property
    def service_id(self) -> int: ...
    @property
    def policy_id(self) -> int | None: ...


@dataclass(frozen=True)
class IncidentPaging:
    """An incident's paging fields, as ``HasEscalation`` (the incident page)."""

    pk: int
    status: str
    escalation_level: int
    escalation_cycle: int
    escalation_step: int
    next_escalation_at: datetime | None
    service_id: int
    policy_id: int | None

    @classmethod
    def of(cls, incident: Incident) -> IncidentPaging:
        return cls(
            pk=incident.pk,
            status=incident.status,
            escalation_level=incident.escalation_level,
            escalation_cycle=incident.escalation_cycle,
            escalation_step=incident.escalation_step,
            next_escalation_at=incident.next_escalation_at,
            service_id=incident.service_id,
            policy_id=incident.service.escalation_policy_id,
        )


def _person_reach(person: str, pages: list[tuple[str, str, str, datetime | None]]) -> PersonReach:
    """One person's state from their pages of the step (channel, status, error, sent_at)."""
    for channel, status, _, sent_at in pages:
        if status == PageStatus.SENT:
            return PersonReach(person, "sent", f"✓ {channel}", f"sent via {channel}", sent_at)
    errors = [error for _, status, error, _ in pages if status == PageStatus.FAILED and error]
    if any(status in (PageStatus.QUEUED, PageStatus.SENDING) for _, status, _, _ in pages):
        if errors:
            return PersonReach(person, "queued", "⟳ retrying", f"queued again after: {errors[-1]}")
        return PersonReach(person, "queued", "… queued", "queued")
    if pages and all(status == PageStatus.CANCELLED for _, status, _, _ in pages):
        return PersonReach(person, "cancelled", "· not sent", "not sent: no longer needed")
    if pages and all(channel == "none" for channel, _, _, _ in pages):
        reason = errors[-1] if errors else "no contact method"
        return PersonReach(person, "unreachable", f"✗ {reason}", f"not reachable: {reason}")
    reason = errors[-1] if errors else "the channel refused the message"
    return PersonReach(person, "failed", f"✗ {reason}", f"failed: {reason}")


def reach(
    incidents: Sequence[HasEscalation], paged: Mapping[int, list[str]]
) -> dict[int, list[PersonReach]]:
    """How each person paged at each incident's current step was reached, in
    one query: people in the order they were paged, then anyone named in
    ``paged`` (the live paging state) without a page row."""
    # Step 0 never paged anyone: no query when no incident has paged yet.
    steps = {i.pk: i.escalation_step for i in incidents if i.escalation_step > 0}
    rows = (
        # Every page of these incidents, oldest first (page_incident_step
        # index), of which each incident's current step: who was paged now
        # and how each attempt went. One IN list instead of a (incident,
        # step) pair per incident: the ORM builds it in a fraction of the
        # time, and an incident has a few pages per step it went through.
        Page.objects.filter(incident_id__in=steps)
        .order_by("incident_id", "pk")
        .values_list(
            "incident_id", "step", "user__username", "channel", "status", "error", "sent_at"
        )
        if steps
        else []
    )
    pages: dict[int, dict[str, list[tuple[str, str, str, datetime | None]]]] = {}
    for incident_id, step, person, channel, status, error, sent_at in rows:
        if step != steps[incident_id]:
            continue
        pages.setdefault(incident_id, {}).setdefault(person or "a deleted user", []).append(
            (channel, status, error, sent_at)
        )
    found: dict[int, list[PersonReach]] = {}
    for incident in incidents:
        mine = pages.get(incident.pk, {})
        people = [_person_reach(person, attempts) for person, attempts in mine.items()]
        people += [
            PersonReach(name, "paged", "", "paged")
            for name in paged.get(incident.pk, [])
            if name not in mine
        ]
        found[incident.pk] = people
    return found


def _in(moment: datetime, now: datetime) -> str:
    minutes = max(0, round((moment - now).total_seconds() / 60))
    return "due now" if minutes == 0 else f"in {minutes} min"


def next_steps(
    incidents: Sequence[HasEscalation], *, now: datetime, windows: Sequence[Window]
) -> dict[int, NextStep | None]:
    """What happens next for each incident, in a fixed number of queries.

    "next: level 2 — bob, in 4 min" (the people of the next level as they will
    be at its deadline: on-call schedules resolved for that moment), "last
    level — nobody else will be paged", "… repeats 1 more time", "held by a
    maintenance window until 04:00 UTC" (``windows``: ``maintenance_windows``
    of these incidents).
    """
    open_ones = [i for i in incidents if i.status != Status.RESOLVED]
    held = _held(windows, now)
    policies = {i.policy_id for i in open_ones if i.policy_id is not None}
    # Every policy's levels, read again only when a paging setting or a
    # person changes (paging.freshness bumps the settings' version).
    levels = readmodel.settings_cached("paging:levels", _levels) if policies else {}
    plans = {i.pk: _next_level(i, levels.get(i.policy_id or 0, [])) for i in open_ones}
    wanted = {
        (schedule_id, i.next_escalation_at)
        for i in open_ones
        if (target := plans[i.pk]) is not None and i.next_escalation_at is not None
        for schedule_id in target[0].schedule_ids
    }
    on_call = oncall.on_call_at_many(wanted)
    found: dict[int, NextStep | None] = {i.pk: None for i in incidents}
    for incident in open_ones:
        found[incident.pk] = _describe(incident, plans[incident.pk], held, on_call, now)
    return found


@dataclass(frozen=True)
class Level:
    """What ``next_steps`` says of an escalation level: its policy's repeats,
    its people (usernames, by user id) and its schedules."""

    repeat_count: int
    people: tuple[str, ...]
    schedule_ids: tuple[int, ...]


def _levels() -> dict[int, list[Level]]:
    """Policy id → its levels in order, in three queries (cached by ``next_steps``)."""
    levels: dict[int, list[Level]] = {}
    for level in (
        EscalationLevel.objects.select_related("policy")
        .prefetch_related(Prefetch("users", queryset=User.objects.order_by("pk")), "schedules")
        .order_by("policy_id", "position", "pk")
    ):
        levels.setdefault(level.policy_id, []).append(
            Level(
                repeat_count=level.policy.repeat_count,
                people=tuple(person.get_username() for person in level.users.all()),
                schedule_ids=tuple(schedule.pk for schedule in level.schedules.all()),
            )
        )
    return levels


Window = tuple[int, datetime, datetime]  # service id, start, end


def maintenance_windows(incidents: Sequence[HasEscalation], now: datetime) -> list[Window]:
    """The maintenance windows not over yet of these incidents' services
    (those with a deadline a window could hold): one query per change to the
    windows (cached under the settings' version), none without."""
    services = {i.service_id for i in incidents if i.next_escalation_at is not None}
    if not services:
        return []

    def not_over() -> list[Window]:
        # Read once per settings' version (a window's save or delete bumps it:
        # paging.freshness). Windows that ended up to ENTRY_TTL before this
        # read are kept, so a request whose clock is behind the one that read
        # them (the entry lives at most that long) still finds every window
        # not over at its own ``now``.
        since = now - timedelta(seconds=readmodel.ENTRY_TTL)
        return list(
            MaintenanceWindow.objects.filter(end__gt=since).values_list(
                "service_id", "start", "end"
            )
        )

    windows = readmodel.settings_cached("paging:windows", not_over)
    return [window for window in windows if window[0] in services and window[2] > now]


def _held(windows: Sequence[Window], now: datetime) -> dict[int, datetime]:
    """Service id → end of the maintenance window holding it now (the latest end)."""
    held: dict[int, datetime] = {}
    for service_id, start, end in windows:
        if start <= now:
            held[service_id] = max(end, held.get(service_id, end))
    return held


def holds_change_at(windows: Sequence[Window], now: datetime) -> datetime | None:
    """The next moment one of these maintenance windows starts or ends:
    until then, what ``next_steps`` says of holds stays true."""
    starts = [start for _, start, _ in windows if start > now]
    return min([*starts, *(end for _, _, end in windows)], default=None)


def _next_level(incident: HasEscalation, levels: list[Level]) -> tuple[Level, int, int] | None:
    """(the level paged at the next deadline, its number, repeats left after it), or None."""
    if not levels or incident.status != Status.TRIGGERED or incident.escalation_level == 0:
        return None
    repeats = levels[0].repeat_count - incident.escalation_cycle
    if incident.escalation_level < len(levels):
        return levels[incident.escalation_level], incident.escalation_level + 1, repeats
    if repeats > 0:
        return levels[0], 1, repeats - 1
    return None


def _describe(
    incident: HasEscalation,
    plan: tuple[Level, int, int] | None,
    held: Mapping[int, datetime],
    on_call: Mapping[tuple[int, datetime], list[User]],
    now: datetime,
) -> NextStep | None:
    at = incident.next_escalation_at
    until = held.get(incident.service_id)
    if at is not None and until is not None:
        return NextStep("held by a maintenance window until", until=until)
    if incident.status == Status.ACKNOWLEDGED:
        if at is None:
            return None
        return NextStep("pages level 1 again if not resolved,", at)
    if incident.escalation_level == 0:
        return None
    if at is None or plan is None:
        return NextStep("last level — nobody else will be paged")
    level, number, repeats = plan
    people: list[str] = list(level.people)
    for schedule_id in level.schedule_ids:
        for person in on_call.get((schedule_id, at), []):
            if person.get_username() not in people:
                people.append(person.get_username())
    again = " again" if number <= incident.escalation_level else ""
    after = ""
    if again:
        after = f"; repeats {repeats + 1} more time" + ("s" if repeats else "")
    who = ", ".join(people) or "nobody"
    return NextStep(f"next: level {number}{again} — {who},", at, after)


# --- reachability before it matters -----------------------------------------


def unreachable(people: Iterable[User]) -> dict[int, str]:
    """User id → why triage cannot be sure to reach them, for the people given
    who have no verified contact method (one query). Verified: a test or a real
    page was delivered through an enabled method."""
    people = list(people)
    why: dict[int, str] = {person.pk: "no contact method" for person in people}
    methods = ContactMethod.objects.filter(user__in=people).order_by("user_id", "position", "pk")
    seen: dict[int, list[ContactMethod]] = {}
    for method in methods:
        seen.setdefault(method.user_id, []).append(method)
    for user_id, theirs in seen.items():
        enabled = [method for method in theirs if method.enabled]
        if any(method.reach_verified_at is not None for method in enabled):
            del why[user_id]
        elif not enabled:
            why[user_id] = "all contact methods are disabled"
        else:
            failed = [m.last_test_result for m in enabled if m.last_test_at and m.last_test_result]
            why[user_id] = (
                f"no method verified yet (last test: {failed[-1]})"
                if failed
                else "no method verified yet: send a test notification"
            )
    return why


@dataclass(frozen=True)
class Unreachable:
    person: User
    reason: str
    targeted_by: list[str]  # schedules and policies that would page them


def unreachable_everyone() -> list[Unreachable]:
    """Every active person triage cannot be sure to reach, with what pages them."""
    people = list(User.objects.filter(is_active=True).order_by("username"))
    reasons = unreachable(people)
    targeted: dict[int, list[str]] = {}
    for user_id, name in RotationMember.objects.values_list("user_id", "rotation__schedule__name"):
        targeted.setdefault(user_id, []).append(f"schedule {name}")
    for user_id, name in Override.objects.filter(end__gt=timezone.now()).values_list(
        "user_id", "schedule__name"
    ):
        targeted.setdefault(user_id, []).append(f"schedule {name} (override)")
    for user_id, name in EscalationLevel.users.through.objects.values_list(
        "user_id", "escalationlevel__policy__name"
    ):
        targeted.setdefault(user_id, []).append(f"policy {name}")
    return [
        Unreachable(person, reasons[person.pk], sorted(set(targeted.get(person.pk, []))))
        for person in people
        if person.pk in reasons
    ]
