"""A new monitored alert in one transaction (``incidents.services.open_alert``)
and a repeat of an alert firing in a storm in one statement
(``incidents.hotpath``), each held equal to the ORM path ``open_incident``
takes for the same alert: the rows written, case by case, and under
concurrency."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from redis import Redis

from incidents import services, storms
from incidents.models import (
    EventKind,
    Incident,
    Service,
    Source,
    Status,
    StormAlert,
    StormAlertStatus,
    TimelineEvent,
)
from integrations.keys import NewKey
from tests.integration_factories import integration, trigger
from tests.test_hotpath import _blocked_on_lock

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=5)
DATA = {"source": "db1", "custom_details": {"disk": "95 %", "é": "ü"}}


def _service(slug: str, threshold: int | None = None) -> Service:
    return Service.objects.create(name=f"Service {slug}", slug=slug, storm_threshold=threshold)


def _alert(service: Service, key: str, source: str, now: datetime) -> dict[str, Any]:
    """One alert, as both paths take it."""
    return {
        "service": service,
        "title": f"Disk full {key}",
        "severity": "critical",
        "details": "db1",
        "source": source,
        "dedup_key": key,
        "data": DATA,
        "now": now,
    }


def _orm(service: Service, key: str, *, source: str = Source.EVENTS_V2, now: datetime = NOW) -> int:
    return services.open_incident(**_alert(service, key, source, now)).incident.pk


def _new(service: Service, key: str, *, source: str = Source.EVENTS_V2, now: datetime = NOW) -> int:
    """The Events v2 path: the one-statement repeat, then ``open_alert``."""
    repeated = services.repeat_alert(
        service=service,
        dedup_key=key,
        title=f"Disk full {key}",
        source=source,
        data=DATA,
        now=now,
    )
    if repeated is not None:
        return repeated
    return services.open_alert(**_alert(service, key, source, now)).incident_id


# Ids differ between the two services (the request fingerprint hashes the
# service's id too); updated_at is the wall clock's.
SKIPPED = {"id", "service", "incident", "storm", "split_into", "updated_at", "request_fingerprint"}


def _fields(row: Any, service: Service) -> dict[str, Any]:
    def value(field: Any) -> Any:
        found = getattr(row, field.attname)
        # Messages name the service: the two services' names differ.
        return found.replace(service.name, "<service>") if isinstance(found, str) else found

    return {
        field.name: value(field)
        for field in type(row)._meta.concrete_fields
        if field.name not in SKIPPED
    }


def _state(service: Service) -> dict[str, list[dict[str, Any]]]:
    """Every incident, timeline row and storm alert of the service, without ids."""
    incidents = Incident.objects.filter(service=service).order_by("pk")
    return {
        "incidents": [_fields(i, service) for i in incidents],
        "timeline": [
            {**_fields(e, service), "on": e.incident.dedup_key or e.incident.title.split(" on ")[0]}
            for e in TimelineEvent.objects.filter(incident__service=service)
            .select_related("incident")
            .order_by("pk")
        ],
        "storm_alerts": [
            _fields(a, service)
            for a in StormAlert.objects.filter(storm__service=service).order_by("pk")
        ],
    }


def _same(
    steps: Callable[[Service, Callable[..., int]], None], threshold: int | None = None
) -> None:
    """Run ``steps`` on one service through the ORM path and on another through
    the new path; both must leave the same rows."""
    orm, new = _service("orm", threshold), _service("new", threshold)
    steps(orm, _orm)
    steps(new, _new)
    expected, got = _state(orm), _state(new)
    for table, rows in expected.items():
        assert len(got[table]) == len(rows), table
        for mine, theirs in zip(got[table], rows, strict=True):
            assert {k: v for k, v in mine.items() if v != theirs[k]} == {}, (table, theirs)


@pytest.mark.django_db
def test_a_new_alert_writes_the_rows_open_incident_writes(redis: Redis) -> None:
    def steps(service: Service, alert: Callable[..., int]) -> None:
        first = alert(service, "disk")
        assert alert(service, "disk", now=LATER) == first  # a repeat joins it
        assert alert(service, "cpu") != first

    _same(steps)
    opened = Incident.objects.get(service__slug="new", dedup_key="disk")
    assert opened.request_fingerprint == services.request_fingerprint(
        service=opened.service,
        title="Disk full disk",
        severity="critical",
        details="db1",
        dedup_key="disk",
    )


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Status.ACKNOWLEDGED, Status.RESOLVED])
def test_an_acknowledged_key_is_joined_and_a_resolved_one_opened_anew(
    status: str, redis: Redis
) -> None:
    def steps(service: Service, alert: Callable[..., int]) -> None:
        first = Incident.objects.get(pk=alert(service, "disk"))
        if status == Status.ACKNOWLEDGED:
            services.acknowledge_incident(first, actor=None, now=NOW)
        else:
            services.resolve_incident(first, actor=None, now=NOW)
        again = alert(service, "disk", now=LATER)
        assert (again == first.pk) == (status == Status.ACKNOWLEDGED)

    _same(steps)


@pytest.mark.django_db
def test_past_the_threshold_alerts_join_the_storm_and_repeats_count_there(redis: Redis) -> None:
    def steps(service: Service, alert: Callable[..., int]) -> None:
        own = [alert(service, key) for key in ("a", "b")]
        stormed = [alert(service, key) for key in ("c", "d", "c")]
        storm = Incident.objects.get(service=service, is_storm=True)
        assert stormed == [storm.pk] * 3
        assert storm.pk not in own
        assert alert(service, "d", now=LATER) == storm.pk  # counted on the storm
        assert alert(service, "a", now=LATER) == own[0]  # its own incident keeps it

    _same(steps, threshold=2)
    counts = dict(
        StormAlert.objects.filter(storm__service__slug="new").values_list("dedup_key", "count")
    )
    assert counts == {"c": 2, "d": 2}


@pytest.mark.django_db
def test_a_resolved_storm_alert_is_not_counted_by_the_statement(redis: Redis) -> None:
    def steps(service: Service, alert: Callable[..., int]) -> None:
        alert(service, "a")
        storm = Incident.objects.get(pk=alert(service, "b"))
        alert(service, "c")
        storms.resolve_alerts(storm, ["b"], now=NOW)
        # "b" fires again: a new alert, decided under the service's lock (it
        # joins the storm again), not a repeat counted by the statement.
        assert alert(service, "b", now=LATER) == storm.pk

    _same(steps, threshold=1)
    alert = StormAlert.objects.get(storm__service__slug="new", dedup_key="b")
    assert (alert.status, alert.count, alert.last_seen_at) == (StormAlertStatus.FIRING, 2, LATER)


@pytest.mark.django_db
def test_only_monitored_sources_count_on_a_storm(redis: Redis) -> None:
    service = _service("new", threshold=1)
    _new(service, "a")
    storm = _new(service, "b")
    before = _state(service)

    assert (
        services.repeat_alert(
            service=service, dedup_key="b", title="x", source=Source.API, data={}, now=LATER
        )
        is None
    )
    assert _state(service) == before  # nothing written
    assert (
        services.repeat_alert(
            service=service, dedup_key="b", title="x", source=Source.EVENTS_V2, data={}, now=LATER
        )
        == storm
    )


@pytest.mark.django_db
def test_an_unmonitored_source_opens_without_the_storm(redis: Redis) -> None:
    def steps(service: Service, alert: Callable[..., int]) -> None:
        for key in ("a", "b", "c", "a"):
            alert(service, key, source=Source.API)

    _same(steps, threshold=1)
    assert not Incident.objects.filter(is_storm=True).exists()


# --- what a new event costs ---------------------------------------------------


@pytest.fixture
def events(web: Service, redis: Redis) -> NewKey:
    return integration(web, "events_v2")


def _send(client: Client, body: dict[str, Any]) -> Any:
    return client.post("/v2/enqueue", data=json.dumps(body), content_type="application/json")


@pytest.mark.django_db
def test_a_new_event_sends_only_what_a_new_incident_needs(client: Client, events: NewKey) -> None:
    with CaptureQueriesContext(connection) as queries:
        response = _send(client, trigger(events.raw, dedup_key="disk"))
    assert response.status_code == 202, response.content
    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    shown = "\n\n".join(statements)
    # No ORM look-up of the incident by its key: the repeat statement (once
    # before the transaction, once under the service's lock) does it.
    locked_incidents = [
        sql
        for sql in statements
        if sql.startswith('SELECT "incidents_incident"') and "FOR UPDATE" in sql
    ]
    assert [sql for sql in locked_incidents if "is_storm" not in sql] == [], shown
    assert not [sql for sql in statements if '"incidents_stormalert"' in sql], shown
    assert sum("WITH target AS" in sql for sql in statements) == 2, shown
    # The key, the repeat, the service's lock, the repeat under it, the open
    # storm and the count of recent incidents in one statement (storms.room),
    # the incident, its event, and the hook's "nobody paged" event (the
    # service has no policy).
    assert len(statements) == 8, shown
    incident = Incident.objects.get()
    assert [e.kind for e in incident.timeline.order_by("pk")][:1] == [EventKind.OPENED]


# --- concurrency --------------------------------------------------------------


def _in_threads(count: int, work: Callable[[int], object]) -> list[object]:
    barrier = threading.Barrier(count)
    results: list[object] = []

    def run(n: int) -> None:
        try:
            barrier.wait()
            results.append(work(n))
        except Exception as exc:  # pragma: no cover - reported by the caller's assert
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("source", [Source.EVENTS_V2, Source.API])
def test_concurrent_triggers_of_one_new_key_open_one_incident(source: str, redis: Redis) -> None:
    service = _service("new")
    results = _in_threads(8, lambda n: _new(service, "disk", source=source))
    assert not [r for r in results if isinstance(r, Exception)], results
    incident = Incident.objects.get(service=service)
    assert results == [incident.pk] * 8
    kinds = [e.kind for e in incident.timeline.all()]
    assert kinds.count(EventKind.OPENED) == 1
    assert kinds.count(EventKind.ALERT) == 7  # every other trigger is one repeat


@pytest.mark.django_db(transaction=True)
def test_concurrent_new_alerts_at_the_threshold_open_exactly_one_storm(redis: Redis) -> None:
    service = _service("new", threshold=5)
    results = _in_threads(12, lambda n: _new(service, f"key-{n}"))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert Incident.objects.filter(is_storm=False).count() == 5
    assert Incident.objects.filter(is_storm=True).count() == 1
    assert StormAlert.objects.count() == 7


@pytest.mark.django_db(transaction=True)
def test_a_storm_repeat_racing_the_alerts_resolve_counts_nothing(redis: Redis) -> None:
    service = _service("new", threshold=1)
    _new(service, "a")
    storm = Incident.objects.get(pk=_new(service, "b"))
    results: list[object] = []

    def repeat() -> None:
        try:
            results.append(_sql_storm_repeat(service, "b"))
        finally:
            connection.close()

    thread = threading.Thread(target=repeat)
    with transaction.atomic():
        StormAlert.objects.select_for_update().get(storm=storm, dedup_key="b")
        storms.resolve_alerts(storm, ["b"], now=NOW)
        thread.start()
        deadline = time.monotonic() + 30
        while not _blocked_on_lock():
            assert time.monotonic() < deadline, "the repeat never waited for the resolve"
    thread.join(30)
    # Once the resolve committed the alert no longer fires: nothing counted,
    # and the caller takes the full path (open_alert), as after storms.repeat.
    assert results == [None]
    alert = StormAlert.objects.get(storm=storm, dedup_key="b")
    assert (alert.status, alert.count) == (StormAlertStatus.RESOLVED, 1)


def _sql_storm_repeat(service: Service, key: str) -> int | None:
    return services.repeat_alert(
        service=service, dedup_key=key, title="x", source=Source.EVENTS_V2, data={}, now=LATER
    )
