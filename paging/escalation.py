"""The escalation engine: decides who is paged and when, and pages them.

It decides; ``incidents.services`` writes: the level paged, the next deadline
and a re-trigger's status change go through ``advance_escalation``,
``set_escalation_deadline``, ``flag_nobody_reached`` and
``retrigger_incident``. The engine runs from the lifecycle hooks paging
registers (``paging.hooks``), the escalation checker and delivery.

Every move happens in a transaction holding the incident's row lock and is
decided from what that locked row says (status, level, next deadline), so two
checkers, a retried task, a manual escalation and an acknowledgement racing
each other are serialised by PostgreSQL: whoever locks second sees the first
one's result. The hooks run inside the incident service's transaction after
it locked the row, so a manual escalation, a reopen and a re-trigger are
serialised the same way. A beat-driven escalation only runs when the locked
row's deadline has passed; the move itself pushes the deadline forward (or
clears it), so the same deadline can never be acted on twice. An escalation
storm (many deadlines due at once) is acted on in chunks, each one
transaction locking its rows in id order (``escalate_many``), under the same
rule. Redis is updated after
commit and is only an index: when it is wrong or empty, the next
reconciliation puts it right (``reconcile``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Exists, OuterRef, Prefetch
from django.utils import timezone

from incidents import hotpath, services
from incidents.models import OPEN_STATUSES, EventKind, Incident, Status, TimelineEvent
from incidents.signals import announce
from incidents.timeline import (
    Actor,
    actor_name,
    after_commit,
    new_event,
    record_event,
)
from paging import oncall, state
from paging.models import (
    ContactMethod,
    EscalationLevel,
    EscalationPolicy,
    MaintenanceWindow,
    NotificationRule,
    Page,
    PageStatus,
)
from triage import counters
from triage.celery import app as celery_app

logger = logging.getLogger(__name__)

LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)


def _levels(policy: EscalationPolicy) -> list[EscalationLevel]:
    return list(
        policy.levels.order_by("position", "pk").prefetch_related("users", Prefetch("schedules"))
    )


def level_targets(level: EscalationLevel, *, at: datetime) -> list[User]:
    """The people a level pages at ``at``: its users, then whoever is on call."""
    people: list[User] = list(level.users.all())
    for schedule in level.schedules.all():
        for person in oncall.who_is_on_call(schedule, at=at):
            if person not in people:
                people.append(person)
    return people


def _active_window(incident: Incident, now: datetime) -> MaintenanceWindow | None:
    """The maintenance window covering the incident's service now (the one
    ending last, when several overlap), or None."""
    return (
        MaintenanceWindow.objects.filter(
            service_id=incident.service_id, start__lte=now, end__gt=now
        )
        .order_by("-end")
        .first()
    )


def _lands_unpaged(incident: Incident) -> bool:
    """Opened with ``{"unpaged": true}`` (a public report with REPORTS_PAGE off)."""
    return incident.timeline.filter(kind=EventKind.OPENED, data__unpaged=True).exists()


def _hold(incident: Incident, window: MaintenanceWindow, now: datetime) -> None:
    """Page nobody while the window lasts; decide again when it ends.

    The incident's deadline becomes the window's end, so the escalation
    checker comes back to it then (and the dashboard counts down to it): a
    problem that began during maintenance and is still open afterwards pages
    its responders instead of waiting silently. The timeline says so once per
    hold, not on every pass. The caller holds the row lock.
    """
    until = window.end
    services.set_escalation_deadline(incident, until)
    if _held_until(incident) != until:
        reason = f"maintenance window until {until:%Y-%m-%d %H:%M %Z}" + (
            f" ({window.reason})" if window.reason else ""
        )
        started = incident.escalation_level > 0 or incident.status != Status.TRIGGERED
        record_event(
            incident,
            EventKind.PAGED,
            actor=None,
            now=now,
            message=f"Escalation held: {reason}" if started else f"Nobody paged: {reason}",
            data={"suppressed": reason, "held_until": until.isoformat()},
        )
    _sync_after_commit(incident, _paged_names(incident), now)


def release_holds(service_id: int, *, now: datetime | None = None) -> int:
    """Incidents held by a maintenance window of this service fall due now.

    Called when a window is shortened, moved or deleted: an incident held
    until the old end would otherwise wait for it. ``escalate_due`` decides
    again for each (holding it anew if another window still covers the
    service, with no second timeline entry for the same end). Returns how
    many were released. Row locks serialise this with the checker.
    """
    now = now or timezone.now()
    released = 0
    with transaction.atomic():
        candidates = Incident.objects.select_for_update().filter(
            service_id=service_id, status__in=OPEN_STATUSES, next_escalation_at__gt=now
        )
        for incident in candidates:
            if _held_until(incident) == incident.next_escalation_at:
                services.set_escalation_deadline(incident, now)
                released += 1
                after_commit(state.set_deadline, incident.pk, now)
    return released


def _held_until(incident: Incident) -> datetime | None:
    """The end of the hold the incident's latest paging entry announced, if any."""
    last = (
        incident.timeline.filter(kind=EventKind.PAGED)
        .exclude(data__has_key="delivery")
        .order_by("-created_at", "-pk")
        .first()
    )
    held_until = last.data.get("held_until") if last is not None else None
    return datetime.fromisoformat(held_until) if held_until else None


NO_METHOD = "no contact method"
ALL_DISABLED = "all contact methods are disabled"


@dataclass(frozen=True)
class _Plan:
    user: User
    method: ContactMethod | None
    delay: int
    unreachable: str = ""  # why, when there is no method


def _notification_plan(people: list[User]) -> list[_Plan]:
    """Each person's rules, or every enabled method at once when they have none."""
    methods = ContactMethod.objects.filter(user__in=people).prefetch_related(
        Prefetch("rules", queryset=NotificationRule.objects.order_by("delay_minutes"))
    )
    by_user: dict[int, list[ContactMethod]] = {}
    disabled: set[int] = set()
    for method in methods:
        if method.enabled:
            by_user.setdefault(method.user_id, []).append(method)
        else:
            disabled.add(method.user_id)
    plan: list[_Plan] = []
    for person in people:
        mine = by_user.get(person.pk, [])
        if not mine:
            why = ALL_DISABLED if person.pk in disabled else NO_METHOD
            plan.append(_Plan(person, None, 0, why))
            continue
        ruled = [(m, r.delay_minutes) for m in mine for r in m.rules.all()]
        for method, delay in ruled or [(m, 0) for m in mine]:
            plan.append(_Plan(person, method, delay))
    return plan


def _page_level(incident: Incident, level: EscalationLevel, *, now: datetime) -> list[str]:
    people = level_targets(level, at=now)
    names = [person.get_username() for person in people]
    plan = _notification_plan(people)
    pages = _page_rows(incident, plan, now)
    Page.objects.bulk_create(pages)
    record_event(
        incident,
        EventKind.PAGED,
        actor=None,
        now=now,
        message=(
            f"Paged {', '.join(names)} (level {incident.escalation_level})"
            if names
            else f"Level {incident.escalation_level} has nobody to page"
        ),
        data={"level": incident.escalation_level, "paged": names},
    )
    for item in plan:
        if item.method is None:
            name = item.user.get_username()
            _record_unreachable(
                incident, name, item.unreachable, step=incident.escalation_step, now=now
            )
    for page in pages:
        if page.status == PageStatus.QUEUED:
            after_commit(_enqueue_delivery, page.pk, page.due_at)
        else:
            after_commit(counters.count, "pages", ("none", "failed"))
    return names


# Pages that may still reach, or did reach, their person.
_LIVE_PAGES = (PageStatus.QUEUED, PageStatus.SENDING, PageStatus.SENT)


def _person(page: Page) -> str:
    return page.user.get_username() if page.user is not None else "a deleted user"


def _delivery_recorded(incident: Incident, step: int, name: str) -> bool:
    return incident.timeline.filter(
        kind=EventKind.PAGED, data__delivery__step=step, data__delivery__user=name
    ).exists()


def _record_unreachable(
    incident: Incident, name: str, reason: str, *, step: int, now: datetime
) -> None:
    """ "Could not reach bob: no contact method" (the callers make it once per
    person and step)."""
    record_event(
        incident,
        EventKind.PAGED,
        actor=None,
        now=now,
        message=f"Could not reach {name}: {reason}",
        data={
            "delivery": {
                "user": name,
                "step": step,
                "outcome": "failed",
                "reason": reason,
            }
        },
    )


def _act_if_unreachable(incident: Incident, *, step: int, levels: int, now: datetime) -> None:
    """The level paged at ``step`` reached nobody: page the next level at once,
    or, at the last level, flag the incident "nobody reached" (once).

    Nobody reached means: no page of the step was sent and none is still
    queued or being sent (the people had no usable contact method, every
    attempt of every method failed, or the level had nobody to page). The
    caller holds the row lock, and ``step`` is the token: the move changes
    the incident's step, so whoever locks the row next (a second worker whose
    last attempt failed at the same moment, the checker) finds the step moved
    and does nothing. Early escalation never starts a new cycle of the
    policy: a repeat comes after the last level's delay, as usual.
    """
    if incident.status != Status.TRIGGERED or incident.escalation_step != step:
        return
    if incident.pages.filter(step=step, status__in=_LIVE_PAGES).exists():
        return
    level = incident.escalation_level
    if level < levels:
        advance(incident, now=now, reason="unreachable")
        return
    if incident.nobody_reached_at is not None:
        return
    services.flag_nobody_reached(incident, now=now)
    record_event(
        incident,
        EventKind.PAGED,
        actor=None,
        now=now,
        message=f"Nobody reached: level {level} is the last and nobody on it could be reached",
        data={"nobody_reached": {"level": level, "step": step}},
    )
    after_commit(counters.count, "nobody_reached", (incident.severity,))


def _lock(incident_id: int) -> Incident | None:
    return (
        Incident.objects.select_for_update(of=("self",))
        .select_related("service__escalation_policy")
        .filter(pk=incident_id)
        .first()
    )


def page_sent(page: Page, *, now: datetime) -> None:
    """After a page was sent: "Paged alice (level 1) — sent via ntfy" on the
    timeline, once per person and step (the row lock serialises two methods
    of the same person delivering at once)."""
    name = _person(page)
    with transaction.atomic():
        incident = _lock(page.incident_id)
        if incident is None or _delivery_recorded(incident, page.step, name):
            return
        record_event(
            incident,
            EventKind.PAGED,
            actor=None,
            now=now,
            message=f"Paged {name} (level {page.level}) — sent via {page.channel}",
            data={
                "delivery": {
                    "user": name,
                    "step": page.step,
                    "outcome": "sent",
                    "channel": page.channel,
                }
            },
        )


def page_failed(page: Page, *, now: datetime) -> None:
    """After a page's last attempt failed (called once its failure committed).

    When none of the person's pages of that step can still reach them, the
    timeline says "Could not reach alice: <why>" (once), and when that leaves
    the whole level reaching nobody, the next level is paged at once
    (``_act_if_unreachable``). If the worker dies before this runs, the
    level's usual deadline still escalates.
    """
    name = _person(page)
    with transaction.atomic():
        incident = _lock(page.incident_id)
        if incident is None:
            return
        theirs = incident.pages.filter(step=page.step, user=page.user)
        if theirs.filter(status__in=_LIVE_PAGES).exists():
            return
        if not _delivery_recorded(incident, page.step, name):
            reason = page.error or "the channel refused the message"
            _record_unreachable(incident, name, reason, step=page.step, now=now)
        policy = incident.service.escalation_policy
        levels = policy.levels.count() if policy is not None else 0
        _act_if_unreachable(incident, step=page.step, levels=levels, now=now)


def _enqueue_delivery(page_id: int, due_at: datetime) -> None:
    celery_app.send_task("paging.deliver_page", args=[page_id], eta=due_at)


def queue_deliveries(page_ids: list[int]) -> int:
    """Queue the delivery of a storm chunk's pages that are still queued,
    through one broker connection (one task per page still: a slow channel
    delays only its own page). A page queued twice is sent once
    (``notify._claim``)."""
    pending = list(
        Page.objects.filter(pk__in=page_ids, status=PageStatus.QUEUED).values_list("pk", "due_at")
    )
    with celery_app.producer_or_acquire() as producer:
        for page_id, due_at in pending:
            celery_app.send_task(
                "paging.deliver_page", args=[page_id], eta=due_at, producer=producer
            )
    return len(pending)


def _sync_after_commit(incident: Incident, paged: list[str] | None, now: datetime) -> None:
    live = state.Live(
        level=incident.escalation_level,
        step=incident.escalation_step,
        paged=paged or [],
        paged_at=now if paged is not None else None,
        next_at=incident.next_escalation_at,
    )
    after_commit(state.write_live, incident.pk, live)


def next_move(
    incident: Incident,
    policy: EscalationPolicy,
    levels: list[EscalationLevel],
    *,
    now: datetime,
) -> services.EscalationMove:
    """The level to page next from where the incident stands, and when to
    decide again: the next level after its delay; after the last level the
    first again, ``repeat_count`` more times; then the last level again with
    no further deadline (only escalating by hand pages it again)."""
    level, cycle = incident.escalation_level, incident.escalation_cycle
    if level == 0:
        level, cycle = 1, 0
    elif level < len(levels):
        level += 1
    elif cycle < policy.repeat_count:
        level, cycle = 1, cycle + 1
    exhausted = level == len(levels) and cycle >= policy.repeat_count
    delay = timedelta(minutes=levels[level - 1].delay_minutes)
    return services.EscalationMove(level, cycle, None if exhausted else now + delay)


def advance(
    incident: Incident,
    *,
    now: datetime,
    reason: str,
    actor: Actor = None,
    lateness: float = 0.0,
    via: str = "",
) -> bool:
    """Page the next level of the service's policy (``next_move``). The
    caller holds the row lock. Returns False when the service has no policy
    (or it has no levels): then nothing more is due.
    """
    policy = incident.service.escalation_policy
    levels = _levels(policy) if policy else []
    if policy is None or not levels:
        services.set_escalation_deadline(incident, None)
        return False
    services.advance_escalation(incident, next_move(incident, policy, levels, now=now))
    level = levels[incident.escalation_level - 1]
    if reason != "opened":
        why = _REASONS[reason].format(level=incident.escalation_level - 1)
        record_event(
            incident,
            EventKind.ESCALATED,
            actor=actor,
            now=now,
            message=f"Escalated to level {incident.escalation_level} ({why})"
            + (f" by {actor_name(actor)}" if reason == "manual" else "")
            + (f" from {via}" if via else ""),
            data={
                "level": incident.escalation_level,
                "cycle": incident.escalation_cycle,
                "reason": reason,
                "lateness_seconds": round(lateness, 3),
            },
        )
        after_commit(counters.count, "escalations", (reason,))
    paged = _page_level(incident, level, now=now)
    _sync_after_commit(incident, paged, now)
    _act_if_unreachable(incident, step=incident.escalation_step, levels=len(levels), now=now)
    # Every paging move (level 1 on opening too): who is paged has changed.
    announce(incident, "escalated")
    return True


_REASONS = {
    "unreachable": "nobody at level {level} could be reached",
    "opened": "incident opened",
    "timeout": "nobody acknowledged in time",
    "manual": "escalated by hand",
    "ack_timeout": "acknowledged but not resolved in time",
    "window_ended": "its maintenance window ended",
}


def on_opened(incident: Incident, *, now: datetime) -> None:
    """Inside ``open_incident``'s transaction (the ``opened`` hook): arrange
    paging for a new incident.

    A service without an escalation policy pages nobody: that is recorded in
    the same transaction (a row, no side effect, nothing that can fail apart
    from the insert itself), which spares every alert of an unrouted service
    a second transaction. Otherwise paging starts after the commit, so a
    failure to page can never lose the incident; reconciliation starts any
    incident whose start was lost.
    """
    if incident.service.escalation_policy_id is None:
        _record_no_policy(incident, now)
    else:
        after_commit(start, incident.pk)


def on_opened_many(incidents: Sequence[Incident], *, now: datetime) -> None:
    """``on_opened`` for incidents opened together (the ``opened_many`` hook):
    the "nobody paged" rows of those without a policy in one INSERT, and
    paging started after the commit for each of the others."""
    unrouted = [i for i in incidents if i.service.escalation_policy_id is None]
    services.record_events_in_bulk([_no_policy_event(incident, now) for incident in unrouted])
    for incident in incidents:
        if incident.service.escalation_policy_id is not None:
            after_commit(start, incident.pk)


def start(incident_id: int, *, now: datetime | None = None) -> None:
    """Page level 1 of a new (or reopened) incident, unless paging is suppressed.

    Runs after the incident's transaction committed. Safe to call twice: only
    a triggered incident that has not paged anyone yet (level 0) moves.
    """
    now = now or timezone.now()
    with transaction.atomic():
        incident = (
            Incident.objects.select_for_update(of=("self",))
            .select_related("service__escalation_policy")
            .filter(pk=incident_id, status=Status.TRIGGERED, escalation_level=0)
            .first()
        )
        if incident is None:
            return
        if incident.service.escalation_policy_id is None:
            # Nobody could be paged, whatever a maintenance window or the
            # incident's flags say: record that without looking them up (the
            # path of every alert for a service nobody is on call for).
            if incident.next_escalation_at is not None:
                services.set_escalation_deadline(incident, None)
            _record_no_policy(incident, now)
            return
        _begin(incident, now=now, reason="opened")


def _begin(incident: Incident, *, now: datetime, reason: str) -> str:
    """Page level 1 of a triggered incident nobody was paged for yet, unless a
    maintenance window holds it or it was set to land unpaged. The caller
    holds the row lock. Returns what happened."""
    window = _active_window(incident, now)
    if window is not None:
        _hold(incident, window, now)
        return "held"
    if _lands_unpaged(incident):
        services.set_escalation_deadline(incident, None)
        record_event(
            incident,
            EventKind.PAGED,
            actor=None,
            now=now,
            message="Nobody paged: this incident was set to land unpaged",
            data={"suppressed": "this incident was set to land unpaged"},
        )
        _sync_after_commit(incident, None, now)
        return "unpaged"
    if not advance(incident, now=now, reason=reason):
        _record_no_policy(incident, now)
        return "no_policy"
    return "started"


def _record_no_policy(incident: Incident, now: datetime) -> None:
    _no_policy_event(incident, now).save()


def _no_policy_event(incident: Incident, now: datetime) -> TimelineEvent:
    return new_event(
        incident,
        EventKind.PAGED,
        actor=None,
        now=now,
        message=f"Nobody paged: {incident.service} has no escalation policy",
        data={"suppressed": "no escalation policy"},
    )


def on_acknowledged(incident: Incident) -> None:
    """Inside ``acknowledge_incident`` (the ``acknowledged`` hook), which
    stopped escalating and armed the ack timeout, if any: the live state
    follows once that commits.

    The live state keeps the names paged at the current level: the dashboard
    shows them beside who acknowledged (it once wrote an empty list here, so
    the row said "—" until the next reconciliation rewrote the names).
    """
    live = state.Live(
        level=incident.escalation_level,
        step=incident.escalation_step,
        paged=_paged_names(incident),
        paged_at=None,
        next_at=incident.next_escalation_at,
    )
    after_commit(state.write_live, incident.pk, live)


def escalate_due(incident_id: int, *, now: datetime | None = None) -> str:
    """Act on an incident whose deadline the checker claimed. Returns what happened.

    - triggered and due: page the next level ("escalated");
    - acknowledged and due (ack timeout): back to triggered, page level 1
      again ("retriggered");
    - due while a maintenance window covers the service: nothing is paged and
      the deadline becomes the window's end ("held"); a triggered incident
      held since it opened pages level 1 then ("started");
    - anything else (acknowledged or resolved meanwhile, already escalated by
      another checker, deadline moved): nothing, and the Redis index is set
      back to the database's deadline ("not_due").
    """
    now = now or timezone.now()
    with transaction.atomic():
        incident = (
            Incident.objects.select_for_update(of=("self",))
            .select_related("service__escalation_policy")
            .filter(pk=incident_id)
            .first()
        )
        if incident is None:
            after_commit(state.forget, incident_id)
            return "gone"
        due = incident.next_escalation_at
        if due is None or due > now or incident.status == Status.RESOLVED:
            after_commit(state.set_deadline, incident.pk, due)
            return "not_due"
        lateness = (now - due).total_seconds()
        window = _active_window(incident, now)
        if window is not None:
            # Maintenance: nobody is paged, re-triggered or escalated to
            # until the window ends; then this incident is due again.
            _hold(incident, window, now)
            outcome = "held"
        elif incident.status == Status.TRIGGERED and incident.escalation_level == 0:
            # Held by a window when it opened, still open after it ended.
            outcome = _begin(incident, now=now, reason="window_ended")
        elif incident.status == Status.ACKNOWLEDGED:
            # Pages level 1 again through the ``retriggered`` hook.
            services.retrigger_incident(incident, now=now)
            outcome = "retriggered"
        else:
            advance(incident, now=now, reason="timeout", lateness=lateness)
            outcome = "escalated"
        after_commit(counters.observe, "escalation_lateness", lateness, LATENESS_BUCKETS)
        return outcome


def _lateness(incident: Incident, now: datetime) -> float:
    """Seconds since the deadline being acted on (still on the locked row)."""
    due = incident.next_escalation_at
    return (now - due).total_seconds() if due is not None else 0.0


def on_retriggered(incident: Incident, *, now: datetime) -> None:
    """Inside ``retrigger_incident`` (the ``retriggered`` hook), called by
    ``escalate_due`` with the row locked: page level 1 again."""
    advance(incident, now=now, reason="ack_timeout", lateness=_lateness(incident, now))


@dataclass(frozen=True)
class _LevelPaging:
    """Whom a level pages at one moment, and how: computed once per level and
    chunk (on-call resolution and contact methods are the same for every
    incident of the chunk, which shares one ``now``)."""

    names: list[str]
    plan: list[_Plan]

    @property
    def reaches_someone(self) -> bool:
        return any(item.method is not None for item in self.plan)


def _level_paging(level: EscalationLevel, now: datetime) -> _LevelPaging:
    people = level_targets(level, at=now)
    return _LevelPaging([person.get_username() for person in people], _notification_plan(people))


def escalate_many(incident_ids: list[int], *, now: datetime | None = None) -> dict[str, int]:
    """Act on many claimed deadlines at once (a chunk of an escalation storm).
    Returns how many had each outcome (``escalate_due``'s names).

    The common case, a triggered incident paged at level ≥ 1 whose deadline
    has passed, outside any maintenance window, whose next level reaches at
    least one person, is escalated in bulk: one transaction locks the whole
    chunk's rows, decides each move from its locked row exactly as
    ``escalate_due`` does (``next_move``), and writes the moves, pages and
    timeline entries with a constant number of statements. Everything else
    (not due any more, acknowledged, held, never started, gone, a level that
    reaches nobody) goes through ``escalate_due`` one by one afterwards.

    Why nothing is escalated twice: the rows are locked ``ORDER BY pk``, so
    two chunks sharing incidents (two checkers, a lease that ran out while a
    chunk waited in the queue, a retried chunk) queue on the locks in the
    same order instead of deadlocking, and the second one finds each
    deadline pushed forward by the first (the move sets the next deadline
    before the locks are released) and leaves it alone. The chunk is all or
    nothing: a worker dying mid-chunk rolls the whole transaction back, and
    the claim's lease (or the broker's redelivery) brings every deadline of
    it back. If the bulk transaction fails (a deadlock with
    ``release_holds``, a database error), each incident is tried on its own,
    so one bad incident cannot stop the others.
    """
    now = now or timezone.now()
    outcomes: dict[str, int] = {}
    try:
        slow = _escalate_in_bulk(incident_ids, now=now, outcomes=outcomes)
    except Exception:
        logger.exception("bulk escalation failed; escalating one by one")
        outcomes.clear()
        slow = list(incident_ids)
    for incident_id in slow:
        try:
            outcome = escalate_due(incident_id, now=now)
        except Exception:
            # One bad incident must not stop the others; its claim expires and
            # it is tried again on a later pass.
            logger.exception("escalation failed", extra={"incident_id": incident_id})
            outcome = "error"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def _escalate_in_bulk(
    incident_ids: list[int], *, now: datetime, outcomes: dict[str, int]
) -> list[int]:
    """The bulk part of ``escalate_many``; returns the ids left to ``escalate_due``."""
    if len(incident_ids) < 2:
        return list(incident_ids)
    slow: list[int] = []
    with transaction.atomic():
        locked = list(
            Incident.objects.select_for_update(of=("self",))
            .select_related("service__escalation_policy")
            .filter(pk__in=incident_ids)
            .order_by("pk")
        )
        found = {incident.pk for incident in locked}
        slow += [incident_id for incident_id in incident_ids if incident_id not in found]
        held = set(
            MaintenanceWindow.objects.filter(
                service_id__in={incident.service_id for incident in locked},
                start__lte=now,
                end__gt=now,
            ).values_list("service_id", flat=True)
        )
        levels_of: dict[int, list[EscalationLevel]] = {}
        paging_of: dict[int, _LevelPaging] = {}
        moves: list[tuple[Incident, services.EscalationMove, _LevelPaging, float]] = []
        for incident in locked:
            due = incident.next_escalation_at
            policy = incident.service.escalation_policy
            if (
                due is None
                or due > now
                or incident.status != Status.TRIGGERED
                or incident.escalation_level == 0
                or policy is None
                or incident.service_id in held
            ):
                slow.append(incident.pk)
                continue
            if policy.pk not in levels_of:
                levels_of[policy.pk] = _levels(policy)
            levels = levels_of[policy.pk]
            if not levels:
                slow.append(incident.pk)
                continue
            move = next_move(incident, policy, levels, now=now)
            level = levels[move.level - 1]
            if level.pk not in paging_of:
                paging_of[level.pk] = _level_paging(level, now)
            paging = paging_of[level.pk]
            if not paging.reaches_someone:
                # Nobody reached means paging the next level at once or
                # flagging the incident: the one-by-one path decides that.
                slow.append(incident.pk)
                continue
            moves.append((incident, move, paging, (now - due).total_seconds()))
        if not moves:
            return slow
        services.advance_escalations([(incident, move) for incident, move, _, _ in moves])
        events: list[TimelineEvent] = []
        pages: list[Page] = []
        for incident, _, paging, lateness in moves:
            events.append(_escalated_event(incident, now, lateness))
            pages += _pages(incident, paging, now)
            events += _paged_events(incident, paging, now)
        # One COPY each (incidents.hotpath): the ORM's bulk_create spent half
        # of a chunk's CPU preparing these rows. The pages' ids are read back
        # (their deliveries are queued by id).
        hotpath.insert_new(pages, with_ids=True)
        hotpath.insert_new(events)
        queued = [(page.pk, page.due_at) for page in pages if page.status == PageStatus.QUEUED]
        failed = len(pages) - len(queued)
        lives = [
            (
                incident.pk,
                state.Live(
                    level=incident.escalation_level,
                    step=incident.escalation_step,
                    paged=paging.names,
                    paged_at=now,
                    next_at=incident.next_escalation_at,
                ),
            )
            for incident, _, paging, _ in moves
        ]
        # The same side effects as ``advance`` (which queues them per
        # incident), batched: one pipeline, one broker connection.
        after_commit(state.write_live_many, lives)
        # Queuing a task costs about a millisecond of kombu per page, more
        # than the escalation itself: a chunk hands its page ids to one
        # ``queue_deliveries`` task instead, behind the storm's other chunks.
        # The Page rows, committed with the move, are the durable record: if
        # that task is lost, reconciliation resends queued pages whose task
        # never ran (``notify.resend_stuck``).
        after_commit(celery_app.send_task, "paging.queue_deliveries", [[pk for pk, _ in queued]])
        after_commit(counters.count, "escalations", ("timeout",), len(moves))
        if failed:
            after_commit(counters.count, "pages", ("none", "failed"), failed)
        after_commit(
            counters.observe_many,
            "escalation_lateness",
            [lateness for _, _, _, lateness in moves],
            LATENESS_BUCKETS,
        )
        for incident, _, _, _ in moves:
            announce(incident, "escalated")
    outcomes["escalated"] = outcomes.get("escalated", 0) + len(moves)
    return slow


def _escalated_event(incident: Incident, now: datetime, lateness: float) -> TimelineEvent:
    """``advance``'s "Escalated to level N" entry for a deadline that passed."""
    why = _REASONS["timeout"].format(level=incident.escalation_level - 1)
    return TimelineEvent(
        incident=incident,
        kind=EventKind.ESCALATED,
        created_at=now,
        message=f"Escalated to level {incident.escalation_level} ({why})",
        data={
            "level": incident.escalation_level,
            "cycle": incident.escalation_cycle,
            "reason": "timeout",
            "lateness_seconds": round(lateness, 3),
        },
    )


def _pages(incident: Incident, paging: _LevelPaging, now: datetime) -> list[Page]:
    """``_page_level``'s Page rows, for an incident already moved to its level."""
    return _page_rows(incident, paging.plan, now)


def _page_rows(incident: Incident, plan: list[_Plan], now: datetime) -> list[Page]:
    """One Page row per planned notification, at the incident's level and step."""
    return [
        Page(
            incident=incident,
            user=item.user,
            contact_method=item.method,
            channel=item.method.scheme if item.method else "none",
            level=incident.escalation_level,
            step=incident.escalation_step,
            due_at=now + timedelta(minutes=item.delay),
            status=PageStatus.QUEUED if item.method else PageStatus.FAILED,
            error=item.unreachable,
        )
        for item in plan
    ]


def _paged_events(incident: Incident, paging: _LevelPaging, now: datetime) -> list[TimelineEvent]:
    """``_page_level``'s timeline entries: who was paged, then who could not be."""
    level = incident.escalation_level
    events = [
        TimelineEvent(
            incident=incident,
            kind=EventKind.PAGED,
            created_at=now,
            message=f"Paged {', '.join(paging.names)} (level {level})",
            data={"level": level, "paged": paging.names},
        )
    ]
    for item in paging.plan:
        if item.method is None:
            name, reason = item.user.get_username(), item.unreachable
            events.append(
                TimelineEvent(
                    incident=incident,
                    kind=EventKind.PAGED,
                    created_at=now,
                    message=f"Could not reach {name}: {reason}",
                    data={
                        "delivery": {
                            "user": name,
                            "step": incident.escalation_step,
                            "outcome": "failed",
                            "reason": reason,
                        }
                    },
                )
            )
    return events


def _chunks(ids: list[int], size: int) -> list[list[int]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def check(
    *, now: datetime | None = None, lookahead: float | None = None, limit: int | None = None
) -> dict[str, Any]:
    """One escalation pass: claim what is due in Redis, act on it, beat the heart.

    Deadlines that fall before the next pass (within ``lookahead`` seconds,
    the check interval) are handed to a task timed for the deadline itself, so
    an escalation is late by milliseconds rather than by up to a whole
    interval: one ``escalate_due`` task per deadline, or one
    ``escalate_chunk`` task per ``ESCALATION_CHUNK_SIZE`` incidents sharing a
    deadline (a storm). What is due now is acted on in chunks: the first here,
    the rest handed to the workers as ``escalate_chunk`` tasks, so a storm of
    thousands is spread over every worker process instead of waiting for one
    pass. A lost task loses nothing: the claim's lease runs out and a later
    pass takes those deadlines again (``escalate_many`` says why acting on a
    deadline twice does nothing the second time). Costs one Redis round trip
    when nothing is due, whatever the number of open incidents.
    """
    now = now or timezone.now()
    if lookahead is None:
        lookahead = settings.ESCALATION_CHECK_SECONDS
    size = settings.ESCALATION_CHUNK_SIZE
    claimed = state.claim_due(
        now.timestamp() + lookahead, limit=limit or settings.ESCALATION_CLAIM_BATCH
    )
    outcomes: dict[str, int] = {}
    due_now: list[int] = []
    later: dict[float, list[int]] = {}
    for incident_id, deadline in claimed:
        if deadline > now.timestamp():
            later.setdefault(deadline, []).append(incident_id)
        else:
            due_now.append(incident_id)
    for deadline, ids in later.items():
        eta = datetime.fromtimestamp(deadline, UTC)
        for part in _chunks(ids, size):
            if len(part) == 1:
                celery_app.send_task("paging.escalate_due", args=part, eta=eta)
            else:
                celery_app.send_task("paging.escalate_chunk", args=[part], eta=eta)
        outcomes["scheduled"] = outcomes.get("scheduled", 0) + len(ids)
    first, *rest = _chunks(due_now, size) or [[]]
    for part in rest:
        celery_app.send_task("paging.escalate_chunk", args=[part])
        outcomes["handed"] = outcomes.get("handed", 0) + len(part)
    for outcome, count in escalate_many(first, now=now).items():
        outcomes[outcome] = outcomes.get(outcome, 0) + count
    state.record_heartbeat(now.timestamp())
    return {"claimed": len(claimed), **outcomes}


def reconcile(*, now: datetime | None = None) -> dict[str, int]:
    """Rebuild Redis from PostgreSQL and start paging anything never started.

    Runs at worker start, periodically, and from ``manage.py
    rebuild_paging_state``. Deadlines come from the database, so an
    escalation that fell due while Redis was empty runs on the next pass.
    """
    now = now or timezone.now()
    # Never started: triggered, nobody paged, no deadline (a window's hold
    # sets one), and not set to land unpaged. Each of these is started once;
    # the ones already recorded as held or unpaged are not recorded again.
    lands_unpaged = TimelineEvent.objects.filter(
        incident=OuterRef("pk"), kind=EventKind.OPENED, data__unpaged=True
    )
    unstarted = list(
        Incident.objects.filter(
            status=Status.TRIGGERED, escalation_level=0, next_escalation_at__isnull=True
        )
        .exclude(service__escalation_policy=None)
        .exclude(Exists(lands_unpaged))
        .values_list("pk", flat=True)
    )
    for incident_id in unstarted:
        start(incident_id, now=now)
    open_incidents = Incident.objects.exclude(status=Status.RESOLVED).only(
        "pk", "escalation_level", "escalation_step", "next_escalation_at"
    )
    deadlines = []
    # In slices of 2,000: one query for the names each slice's incidents
    # paged last and one Redis pipeline for their live state (it was a query
    # and a round trip per incident: minutes of a worker process with 20,000
    # open incidents, in the middle of a storm).
    batch: list[Incident] = []
    for incident in open_incidents.iterator(chunk_size=2000):
        batch.append(incident)
        if len(batch) == 2000:
            _snapshot(batch)
            batch = []
        if incident.next_escalation_at is not None:
            deadlines.append((incident.pk, incident.next_escalation_at))
    _snapshot(batch)
    indexed = state.merge_deadlines(deadlines)
    return {"started": len(unstarted), "deadlines": indexed}


def _snapshot(incidents: list[Incident]) -> None:
    """Reconciliation's live state of these incidents (``write_live`` without
    ``index``), with the names each paged last, in one query and one pipeline."""
    if not incidents:
        return
    last_paged = (
        TimelineEvent.objects.filter(
            incident__in=incidents, kind=EventKind.PAGED, data__has_key="paged"
        )
        .order_by("incident_id", "-created_at", "-pk")
        .distinct("incident_id")
        .values_list("incident_id", "data")
    )
    names = {incident_id: list(data["paged"]) for incident_id, data in last_paged}
    state.write_live_snapshots(
        [
            (
                incident.pk,
                state.Live(
                    level=incident.escalation_level,
                    step=incident.escalation_step,
                    paged=names.get(incident.pk, []),
                    paged_at=None,
                    next_at=incident.next_escalation_at,
                ),
            )
            for incident in incidents
        ]
    )


def _paged_names(incident: Incident) -> list[str]:
    event = (
        incident.timeline.filter(kind=EventKind.PAGED, data__has_key="paged")
        .order_by("-created_at", "-pk")
        .first()
    )
    return list(event.data["paged"]) if event else []
