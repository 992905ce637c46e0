"""Escalation storms: many deadlines due at once, acted on in chunks, each
incident escalated exactly once (real PostgreSQL and Redis)."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import override_settings
from redis import Redis
from time_machine import TimeMachineFixture

from incidents.models import EventKind, Incident, Service, TimelineEvent
from paging import escalation, state, tasks
from paging.models import Page, PageStatus
from tests.factories import IncidentFactory, UserFactory, contact, policy_with_levels
from triage import counters

T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
STORM = 300


@pytest.fixture
def storm_service(web: Service) -> Service:
    ana, ben = UserFactory(username="ana"), UserFactory(username="ben")
    contact(ana)
    contact(ben)
    web.escalation_policy = policy_with_levels((5, [ana]), (10, [ben]), (10, [ana]))
    web.save()
    return web


def _storm(service: Service, count: int) -> list[int]:
    """``count`` incidents paged at level 1, all due at T0, indexed in Redis."""
    created = Incident.objects.bulk_create(
        Incident(
            service=service,
            title=f"disk full {n}",
            severity="critical",
            opened_at=T0 - timedelta(minutes=5),
            escalation_level=1,
            escalation_step=1,
            next_escalation_at=T0,
        )
        for n in range(count)
    )
    state.merge_deadlines((incident.pk, T0) for incident in created)
    return [incident.pk for incident in created]


def _queued(redis: Redis, task: str) -> list[list[Any]]:
    """The args of every ``task`` message waiting in the broker."""
    found = []
    for raw in redis.lrange("celery", 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == task:
            found.append(json.loads(base64.b64decode(message["body"]))[0])
    return found


def _chunks(redis: Redis) -> list[list[int]]:
    return [args[0] for args in _queued(redis, "paging.escalate_chunk")]


def _assert_escalated_once(ids: list[int]) -> None:
    escalated = TimelineEvent.objects.filter(incident_id__in=ids, kind=EventKind.ESCALATED)
    assert escalated.count() == len(ids)
    assert escalated.values("incident").distinct().count() == len(ids)
    pages = Page.objects.filter(incident_id__in=ids, level=2)
    assert pages.count() == len(ids)
    assert set(pages.values_list("status", flat=True)) == {PageStatus.QUEUED}
    assert set(Incident.objects.filter(pk__in=ids).values_list("escalation_level", flat=True)) == {
        2
    }


def _in_threads(*targets: Any) -> None:
    barrier = threading.Barrier(len(targets))

    def run(target: Any) -> None:
        try:
            barrier.wait()
            target()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


@pytest.mark.django_db(transaction=True)
@override_settings(ESCALATION_CHUNK_SIZE=40)
def test_a_storm_claimed_by_two_checkers_is_escalated_exactly_once(
    storm_service: Service, redis: Redis, time_machine: TimeMachineFixture
) -> None:
    ids = _storm(storm_service, STORM)
    time_machine.move_to(T0 + timedelta(seconds=1), tick=False)
    results: list[dict[str, Any]] = []
    _in_threads(
        lambda: results.append(escalation.check()), lambda: results.append(escalation.check())
    )
    # The two passes claimed disjoint sets; each acted on its first chunk and
    # handed the rest to the workers.
    assert sum(result["claimed"] for result in results) == STORM
    chunks = _chunks(redis)
    assert sum(len(chunk) for chunk in chunks) == sum(r.get("handed", 0) for r in results)
    # The leases run out and the index is rebuilt before the workers get to
    # the chunks: a third pass claims everything again, so every incident is
    # in two chunks, run by two workers at once.
    time_machine.shift(timedelta(seconds=60))
    escalation.reconcile()
    again = escalation.check()
    assert again["claimed"] == STORM - sum(r.get("escalated", 0) for r in results)
    chunks = _chunks(redis)
    half = len(chunks) // 2
    _in_threads(
        lambda: [tasks.escalate_chunk(chunk) for chunk in chunks[:half]],
        lambda: [tasks.escalate_chunk(chunk) for chunk in reversed(chunks[half:])],
        lambda: [tasks.escalate_chunk(chunk) for chunk in chunks],
    )
    _assert_escalated_once(ids)
    # Their live state and next deadline are in Redis, ten minutes on.
    live = state.read_live(ids)
    assert {(v.level, tuple(v.paged)) for v in live.values()} == {(2, ("ben",))}
    assert redis.zcount(state.DEADLINES, "-inf", (T0 + timedelta(minutes=9)).timestamp()) == 0
    assert counters.read_metric("escalation_lateness")["le:+Inf"] == STORM


@pytest.mark.django_db(transaction=True)
def test_a_chunk_retried_after_partial_work_does_not_double(
    storm_service: Service, redis: Redis, time_machine: TimeMachineFixture
) -> None:
    ids = _storm(storm_service, 60)
    time_machine.move_to(T0 + timedelta(seconds=1), tick=False)
    # Part of the chunk was escalated elsewhere first (another checker's chunk,
    # or one by one); then the chunk runs, then its task is delivered again.
    for incident_id in ids[:20]:
        assert escalation.escalate_due(incident_id) == "escalated"
    assert tasks.escalate_chunk(ids) == {"escalated": 40, "not_due": 20}
    assert tasks.escalate_chunk(ids) == {"not_due": 60}
    _assert_escalated_once(ids)


@pytest.mark.django_db(transaction=True)
def test_a_chunk_that_fails_midway_leaves_nothing_half_done(
    storm_service: Service,
    redis: Redis,
    time_machine: TimeMachineFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The chunk's transaction rolls back as a whole (as when its worker dies),
    and its incidents are escalated one by one instead, once each."""
    ids = _storm(storm_service, 30)
    time_machine.move_to(T0 + timedelta(seconds=1), tick=False)

    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("connection lost")

    monkeypatch.setattr(TimelineEvent.objects, "bulk_create", broken)
    assert escalation.escalate_many(ids) == {"escalated": 30}
    monkeypatch.undo()
    assert escalation.escalate_many(ids) == {"not_due": 30}
    _assert_escalated_once(ids)


@pytest.mark.django_db(transaction=True)
def test_a_chunk_records_what_one_escalation_records(
    storm_service: Service,
    people_without_contact: User,
    redis: Redis,
    time_machine: TimeMachineFixture,
) -> None:
    """The bulk path writes the same moves, pages and timeline as ``escalate_due``,
    including "could not reach" for a person without a contact method."""
    level_two = storm_service.escalation_policy.levels.get(position=1)  # type: ignore[union-attr]
    level_two.users.add(people_without_contact)
    ids = _storm(storm_service, 3)
    time_machine.move_to(T0 + timedelta(seconds=1), tick=False)
    assert escalation.escalate_due(ids[0]) == "escalated"
    assert escalation.escalate_many(ids[1:]) == {"escalated": 2}

    def story(incident_id: int) -> list[tuple[Any, ...]]:
        incident = Incident.objects.get(pk=incident_id)
        pages = Page.objects.filter(incident=incident).order_by("pk")
        return [
            (incident.escalation_level, incident.escalation_step, incident.next_escalation_at),
            *incident.timeline.order_by("created_at", "pk").values_list("kind", "message", "data"),
            *pages.values_list("user__username", "channel", "level", "step", "status", "error"),
        ]

    assert story(ids[1]) == story(ids[0]) == story(ids[2])
    assert "Could not reach cy: no contact method" in [row[1] for row in story(ids[1])]
    # The chunk's deliveries are queued by one task, for pages still queued.
    ((page_ids,),) = _queued(redis, "paging.queue_deliveries")
    assert len(page_ids) == 2
    Page.objects.filter(pk=page_ids[0]).update(status=PageStatus.CANCELLED)
    assert tasks.queue_deliveries(page_ids) == 1
    delivering = _queued(redis, "paging.deliver_page")
    assert [page_ids[1]] in delivering
    assert [page_ids[0]] not in delivering


@pytest.fixture
def people_without_contact(db: None) -> User:
    return UserFactory(username="cy")


@pytest.mark.django_db(transaction=True)
@override_settings(ESCALATION_CHUNK_SIZE=10)
def test_a_storm_due_before_the_next_pass_is_scheduled_in_chunks(
    storm_service: Service, redis: Redis, time_machine: TimeMachineFixture
) -> None:
    ids = _storm(storm_service, 25)
    lone = IncidentFactory(service=storm_service)
    Incident.objects.filter(pk=lone.pk).update(next_escalation_at=T0 + timedelta(seconds=0.5))
    state.set_deadline(lone.pk, T0 + timedelta(seconds=0.5))
    time_machine.move_to(T0 - timedelta(seconds=0.5), tick=False)
    assert escalation.check(lookahead=1) == {"claimed": 26, "scheduled": 26}
    assert sorted(len(chunk) for chunk in _chunks(redis)) == [5, 10, 10]
    assert _queued(redis, "paging.escalate_due") == [[lone.pk]]
    assert sorted(i for chunk in _chunks(redis) for i in chunk) == ids


@pytest.mark.django_db(transaction=True)
def test_a_chunk_paging_the_last_level_leaves_no_deadline(
    web: Service, redis: Redis, time_machine: TimeMachineFixture
) -> None:
    ana = UserFactory(username="ana")
    contact(ana)
    web.escalation_policy = policy_with_levels((5, [ana]), (10, [ana]))
    web.save()
    ids = _storm(web, 5)
    time_machine.move_to(T0 + timedelta(seconds=1), tick=False)
    assert escalation.check() == {"claimed": 5, "escalated": 5}
    assert set(
        Incident.objects.filter(pk__in=ids).values_list("next_escalation_at", flat=True)
    ) == {None}
    assert redis.zcard(state.DEADLINES) == 0
    assert {live.next_at for live in state.read_live(ids).values()} == {None}
