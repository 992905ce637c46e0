"""The hand-written SQL of incidents.hotpath, held equal to the ORM path it
replaces, case by case: an alert repeat on an open, an acknowledged and a
resolved incident, and one racing a resolve."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from redis import Redis

from incidents import services
from incidents.models import EventKind, Incident, Service, Source, Status, TimelineEvent
from integrations import services as integration_services
from integrations.keys import NewKey
from integrations.payloads import parse_event
from tests.integration_factories import integration, trigger

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
DATA = {"source": "db1", "custom_details": {"disk": "95 %", "nested": [1, {"a": None}], "é": "ü"}}


def _service(slug: str) -> Service:
    return Service.objects.create(name=slug, slug=slug)


def _orm_repeat(service: Service, dedup_key: str) -> services.Opened:
    return services.open_incident(
        service=service,
        title="Disk full again",
        severity="critical",
        source=Source.EVENTS_V2,
        dedup_key=dedup_key,
        data=DATA,
        now=NOW,
    )


def _sql_repeat(service: Service, dedup_key: str) -> int | None:
    return services.repeat_alert(
        service=service,
        dedup_key=dedup_key,
        title="Disk full again",
        source=Source.EVENTS_V2,
        data=DATA,
        now=NOW,
    )


def _incident(service: Service, status: str) -> Incident:
    opened = services.open_incident(
        service=service, title="Disk full", severity="critical", dedup_key="disk", now=NOW
    ).incident
    if status == Status.ACKNOWLEDGED:
        services.acknowledge_incident(opened, actor=None, now=NOW)
    if status == Status.RESOLVED:
        services.resolve_incident(opened, actor=None, now=NOW)
    return opened


def _rows(service: Service) -> list[dict[str, Any]]:
    """Every timeline row of the service's incidents, without ids."""
    return [
        {
            field.name: getattr(event, field.attname)
            for field in TimelineEvent._meta.concrete_fields
            if field.name not in {"id", "incident"}
        }
        for event in TimelineEvent.objects.filter(incident__service=service).order_by("pk")
    ]


def _state(service: Service) -> list[tuple[str, str, int]]:
    incidents = Incident.objects.filter(service=service).order_by("pk")
    return [(i.dedup_key, i.status, i.timeline.count()) for i in incidents]


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Status.TRIGGERED, Status.ACKNOWLEDGED])
def test_a_repeat_writes_the_row_the_orm_path_writes(status: str, redis: Redis) -> None:
    orm, sql = _service("orm"), _service("sql")
    orm_incident, sql_incident = _incident(orm, status), _incident(sql, status)
    setup = len(_rows(sql))

    joined = _orm_repeat(orm, "disk")
    repeated = _sql_repeat(sql, "disk")

    assert joined.deduplicated
    assert joined.incident.pk == orm_incident.pk
    assert repeated == sql_incident.pk
    written = _rows(sql)[setup:]
    assert written == _rows(orm)[setup:]
    assert [row["kind"] for row in written] == [EventKind.ALERT]
    assert written[0]["data"] == {"source": Source.EVENTS_V2, **DATA}
    sql_incident.refresh_from_db()
    orm_incident.refresh_from_db()
    assert sql_incident.status == orm_incident.status == status


@pytest.mark.django_db
def test_a_repeat_of_a_resolved_key_writes_nothing_and_the_orm_path_opens_a_new_one(
    redis: Redis,
) -> None:
    orm, sql = _service("orm"), _service("sql")
    _incident(orm, Status.RESOLVED)
    _incident(sql, Status.RESOLVED)
    before = _rows(sql)

    assert _sql_repeat(sql, "disk") is None
    assert _rows(sql) == before  # nothing written: the caller opens one

    assert _orm_repeat(orm, "disk").created
    assert _orm_repeat(sql, "disk").created
    assert _state(sql) == _state(orm)


@pytest.mark.django_db
def test_no_key_and_another_service_s_key_never_join(redis: Redis) -> None:
    sql, other = _service("sql"), _service("other")
    _incident(other, Status.TRIGGERED)
    Incident.objects.filter(service=other).update(dedup_key="")

    assert _sql_repeat(sql, "disk") is None
    assert _sql_repeat(other, "") is None
    assert _sql_repeat(other, "disk") is None


def _blocked_on_lock() -> bool:
    """Whether another session of this test database waits for a row lock."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND pid <> pg_backend_pid()"
        )
        return bool(cursor.fetchone()[0])


def _race_a_resolve(service: Service, repeat: Callable[[], object]) -> object:
    """Run ``repeat`` in another connection while a resolve holds the row,
    commit the resolve once ``repeat`` waits on the lock; ``repeat``'s result."""
    incident = Incident.objects.get(service=service, dedup_key="disk", status=Status.TRIGGERED)
    results: list[object] = []

    def other() -> None:
        try:
            results.append(repeat())
        finally:
            connection.close()

    thread = threading.Thread(target=other)
    with transaction.atomic():
        services.resolve_incident(incident, actor=None, now=NOW)
        thread.start()
        deadline = time.monotonic() + 30
        while not _blocked_on_lock():
            assert time.monotonic() < deadline, "the repeat never waited for the resolve"
    thread.join(30)
    return results[0]


@pytest.mark.django_db(transaction=True)
def test_a_repeat_racing_a_resolve_does_what_the_orm_path_does(redis: Redis) -> None:
    orm, sql = _service("orm"), _service("sql")
    _incident(orm, Status.TRIGGERED)
    _incident(sql, Status.TRIGGERED)

    joined = _race_a_resolve(orm, lambda: _orm_repeat(orm, "disk"))
    repeated = _race_a_resolve(sql, lambda: _sql_repeat(sql, "disk"))

    # The ORM path found nothing open once the resolve committed and opened a
    # new incident; the statement wrote nothing, and Events v2 opens one.
    assert isinstance(joined, services.Opened)
    assert joined.created
    assert repeated is None
    event = parse_event(trigger("0" * 32, dedup_key="disk", payload={"summary": "x"}))
    assert not isinstance(event, list)
    key = integration(sql, "events_v2")
    outcome = integration_services.ingest_event(key.integration, event, now=NOW)
    assert outcome.action == "opened"
    assert [status for _, status, _ in _state(orm)] == [Status.RESOLVED, Status.TRIGGERED]
    assert _state(sql) == _state(orm)  # the resolved one got no repeat either


@pytest.fixture
def events(web: Service, redis: Redis) -> NewKey:
    return integration(web, "events_v2")


def _send(client: Client, body: dict[str, Any]) -> Any:
    return client.post("/v2/enqueue", data=json.dumps(body), content_type="application/json")


@pytest.mark.django_db
def test_a_repeated_event_costs_one_statement_for_the_repeat(
    client: Client, events: NewKey
) -> None:
    assert _send(client, trigger(events.raw, dedup_key="disk")).status_code == 202
    with CaptureQueriesContext(connection) as queries:
        response = _send(client, trigger(events.raw, dedup_key="disk"))
    assert response.status_code == 202, response.content
    assert response.json()["dedup_key"] == "disk"
    statements = [q["sql"] for q in queries.captured_queries]
    writes = [sql for sql in statements if "integrations_integration" not in sql]
    # The key look-up, then one statement: no transaction, no SELECT ... FOR UPDATE.
    assert len(writes) == 1, "\n".join(writes)
    assert Incident.objects.get().timeline.filter(kind=EventKind.ALERT).count() == 1


def test_the_statement_names_the_statuses_and_kind_the_models_do() -> None:
    # The SQL spells out what the models define; a new open status or a
    # renamed kind must change it too, or repeats would join the wrong rows.
    import re

    from incidents import hotpath
    from incidents.models import OPEN_STATUSES

    listed = re.search(r"status IN \(([^)]*)\)", hotpath._REPEAT)
    assert listed is not None
    assert {s.strip(" '") for s in listed.group(1).split(",")} == set(OPEN_STATUSES)
    assert f"SELECT id, '{EventKind.ALERT}', NULL" in hotpath._REPEAT
