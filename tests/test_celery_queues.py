"""Two Celery queues: beat's escalation checks, and everything else.

An escalation storm queues thousands of deliveries in Celery's default queue;
beat's checks have a queue of their own, polled first, so they never wait
behind them. These tests read the real broker (Redis) to see where each task
lands, and hold the worker commands triage ships (``make run``'s, the Helm
chart's) to the queues the settings declare."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.conf import settings
from redis import Redis
from time_machine import TimeMachineFixture

from incidents.models import Service
from paging import escalation, tasks
from paging.models import Page
from tests.factories import UserFactory, contact, policy_with_levels
from tests.test_escalation_storm import T0, _storm
from triage import devstack
from triage.celery import app


def _tasks(redis: Redis, queue: str) -> list[str]:
    return [json.loads(raw)["headers"]["task"] for raw in redis.lrange(queue, 0, -1)]


@pytest.mark.django_db(transaction=True)
def test_beats_check_waits_in_its_own_queue_not_behind_a_storms_deliveries(
    web: Service, redis: Redis, time_machine: TimeMachineFixture
) -> None:
    ana = UserFactory(username="ana")
    contact(ana)
    web.escalation_policy = policy_with_levels((5, [ana]), (10, [ana]))
    web.save()
    _storm(web, 30)  # 30 incidents paged at level 1, all due at T0
    time_machine.move_to(T0 + timedelta(seconds=1), tick=False)
    assert escalation.check() == {"claimed": 30, "escalated": 30}
    assert tasks.queue_deliveries(list(Page.objects.values_list("pk", flat=True))) == 30
    # Beat's next check, sent as beat sends it (by name, routed by settings).
    app.send_task("paging.check_escalations")
    assert _tasks(redis, "celery").count("paging.deliver_page") == 30
    assert _tasks(redis, "escalation") == ["paging.check_escalations"]


def test_only_beats_checks_are_routed_to_the_escalation_queue() -> None:
    router = app.amqp.router
    assert router.route({}, "paging.check_escalations")["queue"].name == "escalation"
    for task in ("paging.escalate_chunk", "paging.deliver_page", "paging.reconcile"):
        assert router.route({}, task)["queue"].name == "celery"


def test_the_worker_commands_consume_every_declared_queue_checks_first() -> None:
    declared = [queue.name for queue in settings.CELERY_TASK_QUEUES]
    assert declared == ["escalation", "celery"]
    assert ",".join(declared) == devstack.WORKER_QUEUES
    # A worker started with no --queues (the tests', older deployments')
    # consumes every declared queue too.
    assert list(app.amqp.queues) == declared


def test_a_worker_polls_the_escalation_queue_first() -> None:
    # kombu's Redis transport with "priority": BRPOP escalation celery, in
    # that order every time (round robin would rotate them after each message).
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        for queue in settings.CELERY_TASK_QUEUES:
            channel._active_queues.append(queue.name)
        channel._update_queue_cycle()
        assert channel._queue_cycle.consume(2) == ["escalation", "celery"]
        channel._queue_cycle.rotate("escalation")
        assert channel._queue_cycle.consume(2) == ["escalation", "celery"]
