"""``incidents.hotpath.insert_new`` (one COPY) held equal to the ORM's
``bulk_create`` for every model it writes: the incidents, timeline events and
alerts of a large Alertmanager notification and the pages of an escalation
storm, field by field, odd values included (JSON with nesting, unicode and
quotes, tabs and newlines, NULLs, choices, auto_now)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import Model
from django.test.utils import CaptureQueriesContext
from psycopg import errors as pg_errors

from incidents import hotpath
from incidents.models import EventKind, Incident, Service, Severity, Source, TimelineEvent
from integrations.keys import create_integration
from integrations.models import Alert, AlertStatus
from paging.models import Page, PageStatus
from tests.factories import UserFactory, contact

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
ODD = "tab\there, newline\nthere, back\\slash, quote ' \" and é ü 🔥"
DATA = {"firing": [ODD, "b"], "nested": {"a": None, "n": 1.5, "t": True}, "é": ODD}


def _fields(obj: Model) -> dict[str, Any]:
    """Every stored value but the primary key (read back from PostgreSQL)."""
    row = type(obj).objects.filter(pk=obj.pk).values().get()
    row.pop("id")
    return row


def _both(make: Any, *, with_ids: bool) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The same new rows written by bulk_create and by insert_new."""
    orm, sql = make(), make()
    type(orm[0]).objects.bulk_create(orm)
    hotpath.insert_new(sql, with_ids=with_ids)
    if not with_ids:  # read back in the order written
        model = type(sql[0])
        latest = model.objects.order_by("-pk").values_list("pk", flat=True)[: len(sql)]
        for obj, pk in zip(sql, reversed(list(latest)), strict=True):
            obj.pk = pk
    assert all(obj.pk and not obj._state.adding for obj in sql)
    return [(_fields(a), _fields(b)) for a, b in zip(orm, sql, strict=True)]


def _differing(pairs: list[tuple[dict[str, Any], dict[str, Any]]], *ignore: str) -> list[Any]:
    return [
        (key, a[key], b[key])
        for a, b in pairs
        for key in a
        if key not in ignore and a[key] != b[key]
    ]


@pytest.mark.django_db
def test_incidents_are_written_as_bulk_create_writes_them(web: Service) -> None:
    counter = iter(range(1000))

    def make() -> list[Incident]:
        return [
            Incident(
                service=web,
                title=ODD,
                details=ODD if n % 2 else "",
                severity=Severity.CRITICAL if n % 2 else Severity.WARNING,
                source=Source.ALERTMANAGER,
                dedup_key=f"key-{next(counter)}",
                request_fingerprint="f" * 64,
                opened_at=NOW,
            )
            for n in range(3)
        ]

    pairs = _both(make, with_ids=True)
    # updated_at is auto_now (the moment each was written); dedup keys differ.
    assert _differing(pairs, "updated_at", "dedup_key") == []
    assert all(b["updated_at"] >= a["updated_at"] for a, b in pairs)
    assert {b["status"] for _, b in pairs} == {"triggered"}


@pytest.mark.django_db
def test_timeline_events_and_alerts_are_written_as_bulk_create_writes_them(web: Service) -> None:
    incident = Incident.objects.create(service=web, title="t", severity="error", opened_at=NOW)
    alice = UserFactory(username="alice")

    def events() -> list[TimelineEvent]:
        return [
            TimelineEvent(
                incident=incident, kind=EventKind.OPENED, message=ODD, data=DATA, created_at=NOW
            ),
            TimelineEvent(
                incident=incident, kind=EventKind.NOTE, actor=alice, message="", created_at=NOW
            ),
        ]

    assert _differing(_both(events, with_ids=False)) == []
    integration = create_integration(service=web, kind="alertmanager", name="am").integration
    counter = iter(range(1000))

    def alerts() -> list[Alert]:
        return [
            Alert(
                incident=incident,
                integration=integration,
                fingerprint=f"{next(counter):016x}",
                status=AlertStatus.FIRING if n else AlertStatus.RESOLVED,
                labels={"alertname": ODD, "n": str(n)},
                annotations={} if n else DATA,
                starts_at=NOW - timedelta(minutes=n),
                ends_at=None if n else NOW,
                generator_url=ODD,
                links=[{"href": "http://x", "text": ODD}] if n else {},
                first_seen_at=NOW,
                last_seen_at=NOW,
            )
            for n in range(2)
        ]

    assert _differing(_both(alerts, with_ids=False), "fingerprint") == []


@pytest.mark.django_db
def test_pages_are_written_as_bulk_create_writes_them(web: Service) -> None:
    incident = Incident.objects.create(service=web, title="t", severity="error", opened_at=NOW)
    ana = UserFactory(username="ana")
    method = contact(ana)

    def make() -> list[Page]:
        return [
            Page(
                incident=incident,
                user=ana,
                contact_method=method,
                channel="json",
                level=2,
                step=3,
                due_at=NOW,
                status=PageStatus.QUEUED,
            ),
            Page(
                incident=incident,
                user=ana,
                contact_method=None,
                channel="none",
                level=2,
                step=3,
                due_at=NOW,
                status=PageStatus.FAILED,
                error=ODD,
            ),
        ]

    pairs = _both(make, with_ids=True)
    assert _differing(pairs, "created_at", "updated_at") == []


@pytest.mark.django_db
def test_a_copy_is_one_statement_and_ids_one_more(web: Service) -> None:
    incidents = [
        Incident(service=web, title="t", severity="error", dedup_key=f"k{n}", opened_at=NOW)
        for n in range(50)
    ]
    with CaptureQueriesContext(connection) as queries:
        hotpath.insert_new(incidents, with_ids=True)
        hotpath.insert_new([])
    assert len(queries.captured_queries) in (1, 2)  # the COPY itself is not logged by Django
    assert sorted(i.pk for i in incidents) == [i.pk for i in incidents]
    assert Incident.objects.filter(pk__in=[i.pk for i in incidents]).count() == 50
    # The sequence moved past them: the ORM's next incident does not collide.
    after = Incident.objects.create(service=web, title="t", severity="error", opened_at=NOW)
    assert after.pk > max(i.pk for i in incidents)


@pytest.mark.django_db
def test_an_open_dedup_key_taken_already_is_django_s_integrity_error(web: Service) -> None:
    Incident.objects.create(
        service=web, title="t", severity="error", dedup_key="disk", opened_at=NOW
    )
    twin = Incident(service=web, title="t", severity="error", dedup_key="disk", opened_at=NOW)
    with pytest.raises(IntegrityError) as raised, transaction.atomic():
        hotpath.insert_new([twin], with_ids=True)
    assert isinstance(raised.value.__cause__, pg_errors.UniqueViolation)
    assert Incident.objects.filter(dedup_key="disk").count() == 1
