"""The hand-written SQL of measured hot paths: the only module that has any.

Everything else goes through the ORM. A statement lands here only when a
benchmark showed the ORM's cost on a path that runs at ingest rate, and
``tests/test_hotpath.py`` holds each one equal to the ORM path it replaces,
case by case (the rows it writes, field by field).

``record_repeat``: an alert repeat (an Events API v2 trigger whose dedup key
has an open incident) as one autocommit statement. The ORM path
(``incidents.services._join`` + ``record_event``) takes six round trips and
~2.5 ms of Python, most of it spent building SQL while the incident's row is
locked; this takes one round trip and no Python inside the lock.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from django.db import connection
from django.db.models import JSONField, Model

# Why this is exactly-once and race-free without a transaction of ours:
# - The CTE locks the open incident's row (FOR UPDATE) and the INSERT adds its
#   timeline row in the same statement, which PostgreSQL runs as one
#   transaction (autocommit): the lock is held only while the statement runs.
# - A resolve that holds the row first makes this statement wait; once it
#   commits, PostgreSQL re-checks the WHERE against the new row version
#   (READ COMMITTED's re-check for locking reads), the row is no longer open,
#   the CTE is empty and nothing is inserted: the caller then opens a new
#   incident, as the ORM path does after a resolve.
# - A resolve that comes after this statement sees the repeat committed.
# - At most one open incident per (service, dedup key) exists (the partial
#   unique index ``incident_one_open_per_dedup_key``), so at most one row is
#   inserted. The WHERE matches that index's predicate, which makes the
#   look-up one index probe.
# One constant string (no formatting: every value is a parameter). The open
# statuses and the event kind are spelled out as the models name them
# (``OPEN_STATUSES``, ``EventKind.ALERT``); ``tests/test_hotpath.py`` fails if
# they drift apart.
_REPEAT = """
WITH target AS (
    SELECT id FROM incidents_incident
    WHERE service_id = %s AND dedup_key = %s AND dedup_key <> ''
      AND status IN ('triggered', 'acknowledged')
    FOR UPDATE
)
INSERT INTO incidents_timelineevent (incident_id, kind, actor_id, message, data, created_at)
SELECT id, 'alert', NULL, %s, %s::jsonb, %s FROM target
RETURNING incident_id
"""


def record_repeat(
    *, service_id: int, dedup_key: str, message: str, data: dict[str, Any], now: datetime
) -> int | None:
    """Add an alert-repeat event (no actor) to the open incident of
    ``service_id`` with ``dedup_key``; return its id, or None when no
    incident with that key is open (nothing was written).

    ``data`` is encoded as Django's ``JSONField`` encodes it (``json.dumps``
    with no encoder), so the row is the one ``record_event`` writes.
    """
    with connection.cursor() as cursor:
        cursor.execute(_REPEAT, [service_id, dedup_key, message, json.dumps(data), now])
        row = cursor.fetchone()
    return None if row is None else int(row[0])


# --- Bulk inserts of a large Alertmanager notification ----------------------
#
# ``insert_new``: new rows of one model written with one COPY instead of the
# ORM's ``bulk_create``. Measured (docs/performance.md, "One large
# Alertmanager notification"): for 5,000 new alerts, a third of the CPU went
# to Django preparing each value of 20,000 rows and a fifth to psycopg quoting
# the arrays of Django's ``UNNEST`` insert. COPY hands psycopg's C code one
# row at a time in PostgreSQL's own text format and PostgreSQL reads it
# without building arrays. ``tests/test_hotpath.py`` holds the rows it writes
# equal, field by field, to ``bulk_create``'s.
#
# Concurrency: COPY takes the same row and index locks as INSERT. A unique
# index (an open incident's dedup key) makes it wait for a concurrent
# transaction that wrote the same key and fail once that one commits, as an
# INSERT would; the error is Django's ``IntegrityError`` (the COPY runs inside
# ``wrap_database_errors``), so callers settle that race as they did.

_RESERVE_IDS = "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)"


def _db_value(field: Any, obj: Any) -> Any:
    """The value ``bulk_create`` would write for ``field`` of a new ``obj``
    (``pre_save`` sets auto_now fields), in a form COPY takes."""
    value = field.pre_save(obj, True)
    if value is None:
        return None
    if isinstance(field, JSONField):
        # What Django's JSONField sends (json.dumps with the field's encoder).
        return json.dumps(value, cls=field.encoder)
    if isinstance(value, Enum):
        return value.value  # TextChoices members: the stored string
    return value


def insert_new(objs: Sequence[Model], *, with_ids: bool = False) -> None:
    """Write new instances of one model with one COPY (``bulk_create`` for
    rows no other row conflicts with). With ``with_ids``, the primary keys
    are taken from the table's sequence first (one more statement) and set
    on the instances, as ``bulk_create`` sets them; without, they stay None.
    Both statements go through Django's execute wrappers, so whatever counts
    statements sees them."""
    if not objs:
        return
    model = type(objs[0])
    opts = model._meta
    fields = [field for field in opts.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        if with_ids:
            cursor.execute(_RESERVE_IDS, [opts.db_table, opts.pk.column, len(objs)])
            for obj, (pk,) in zip(objs, sorted(cursor.fetchall()), strict=True):
                obj.pk = pk
            fields = [opts.pk, *fields]
        for obj in objs:
            # What bulk_create does first: a related object saved since it was
            # assigned gives its id now (django-stubs omit this private method).
            obj._prepare_related_fields_for_save(operation_name="bulk_create")  # type: ignore[attr-defined]
        rows = [[_db_value(field, obj) for field in fields] for obj in objs]
        # Table and column names come from the model's metadata, quoted: no
        # value is formatted into the statement (they travel as COPY data).
        columns = ", ".join(quote(str(field.column)) for field in fields)
        sql = f"COPY {quote(opts.db_table)} ({columns}) FROM STDIN"

        def copy(sql: str, params: Any, many: bool, context: Any) -> None:
            with connection.wrap_database_errors, cursor.cursor.copy(sql) as stream:
                for row in rows:
                    stream.write_row(row)

        cursor._execute_with_wrappers(sql, None, False, copy)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias
