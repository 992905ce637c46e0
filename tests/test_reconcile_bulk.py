"""Reconciliation rebuilds the live paging state of every open incident in
slices: the names each incident paged last come back, for a number of
statements that does not grow with the number of incidents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from redis import Redis

from incidents.models import EventKind, Incident, Service, TimelineEvent
from paging import escalation, state

T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


def _open(service: Service, count: int) -> list[Incident]:
    incidents = Incident.objects.bulk_create(
        Incident(
            service=service,
            title=f"disk {n}",
            severity="error",
            opened_at=T0,
            escalation_level=1,
            escalation_step=2,
            next_escalation_at=T0 + timedelta(minutes=5),
        )
        for n in range(count)
    )
    events = []
    for n, incident in enumerate(incidents):
        if n % 3 == 0:
            continue  # never paged anyone
        events.append(
            TimelineEvent(
                incident=incident,
                kind=EventKind.PAGED,
                created_at=T0,
                message="Paged ana",
                data={"level": 1, "paged": ["ana"]},
            )
        )
        events.append(  # a later page wins
            TimelineEvent(
                incident=incident,
                kind=EventKind.PAGED,
                created_at=T0 + timedelta(minutes=1),
                message=f"Paged ben{n}",
                data={"level": 2, "paged": [f"ben{n}", "cy"]},
            )
        )
        events.append(  # a delivery note carries no "paged" list
            TimelineEvent(
                incident=incident,
                kind=EventKind.PAGED,
                created_at=T0 + timedelta(minutes=2),
                message="Could not reach cy",
                data={"delivery": {"user": "cy"}},
            )
        )
    TimelineEvent.objects.bulk_create(events)
    return incidents


@pytest.mark.django_db
def test_reconciliation_restores_who_each_incident_paged_last(web: Service, redis: Redis) -> None:
    incidents = _open(web, 6)
    escalation.reconcile()
    live = state.read_live([incident.pk for incident in incidents])
    for n, incident in enumerate(incidents):
        expected = [] if n % 3 == 0 else [f"ben{n}", "cy"]
        assert live[incident.pk].paged == expected
        assert (live[incident.pk].level, live[incident.pk].step) == (1, 2)
    assert (
        redis.zscore(state.DEADLINES, str(incidents[0].pk))
        == (T0 + timedelta(minutes=5)).timestamp()
    )


@pytest.mark.django_db
def test_reconciliation_costs_the_same_statements_for_5_or_60_incidents(
    web: Service, redis: Redis
) -> None:
    _open(web, 5)
    with CaptureQueriesContext(connection) as few:
        escalation.reconcile()
    _open(web, 55)
    with CaptureQueriesContext(connection) as many:
        escalation.reconcile()
    assert len(many.captured_queries) == len(few.captured_queries)
