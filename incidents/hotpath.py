"""The hand-written SQL of measured hot paths: the only module that has any.

Everything else goes through the ORM. A statement lands here only when a
benchmark showed the ORM's cost on a path that runs at ingest rate, and
``tests/test_hotpath.py`` holds each one equal to the ORM path it replaces,
case by case (the rows it writes, field by field).

``record_repeat``: an alert repeat (an Events API v2 trigger whose dedup key
has an open incident) as one autocommit statement. The ORM path
(``incidents.services._join`` + ``record_event``) takes six round trips and
~2.5 ms of Python, most of it spent building SQL while the incident's row is
locked; this takes one round trip and no Python inside the lock. For
monitored sources the same statement also counts a trigger of an alert that
fires in the service's open storm (what ``incidents.storms.join`` does for a
key already listed, in one statement), so during a storm a repeat is one
statement too, and a new alert's transaction need not look for either again
before the service's lock.

``lock_storming`` + ``join_storm``: a new alert joining an alert storm that
is storming (``incidents.storms.join_storming``), two statements that share
the storm's row instead of queueing on the service's lock; held equal to
``storms.join`` by ``tests/test_storms.py``.

``insert_new``: the thousands of new rows of one model that a large
Alertmanager notification or an escalation storm's chunk writes, in one
``COPY`` instead of ``bulk_create``; held equal to the ORM's rows field by
field by ``tests/test_hotpath_bulk.py``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from django.db import connection
from django.db.models import JSONField, Model

from incidents.models import Incident

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


# ``_REPEAT`` and, for monitored sources, the storm branch (``stormed``).
# Why the storm branch is exactly-once, counting a trigger once and in one place:
# - It runs only when ``target`` found no open incident (NOT EXISTS reads the
#   same materialised CTE), and an alert never fires both in an incident and
#   in the storm (``incidents.storms``): a statement counts at most one home.
# - The UPDATE locks the storm alert row and adds ``count + 1`` on the locked
#   row; a concurrent ``storms.join`` or resolve that holds it first makes it
#   wait, then PostgreSQL re-checks the WHERE on the new row version: an
#   alert resolved or split meanwhile is no longer firing and is not counted
#   (the caller then takes the full path, ``open_alert``).
# - At most one storm per service is open (``incident_one_open_storm_per_
#   service``) and it lists a key once (``storm_alert_one_per_key``): at most
#   one row is updated.
# - The storm incident's row is not locked: a repeat locks one storm alert
#   row and nothing else, so it keeps the lock order of ``incidents.storms``
#   (service, incidents, storm, alerts) and cannot deadlock with a join,
#   a resolve or a split.
_REPEAT_OR_STORM = """
WITH target AS (
    SELECT id FROM incidents_incident
    WHERE service_id = %s AND dedup_key = %s AND dedup_key <> ''
      AND status IN ('triggered', 'acknowledged')
    FOR UPDATE
),
repeated AS (
    INSERT INTO incidents_timelineevent (incident_id, kind, actor_id, message, data, created_at)
    SELECT id, 'alert', NULL, %s, %s::jsonb, %s FROM target
    RETURNING incident_id
),
stormed AS (
    UPDATE incidents_stormalert AS alert
    SET count = alert.count + 1, last_seen_at = %s
    FROM incidents_incident AS storm
    WHERE storm.id = alert.storm_id AND storm.service_id = %s AND storm.is_storm
      AND storm.status IN ('triggered', 'acknowledged')
      AND alert.dedup_key = %s AND alert.status = 'firing'
      AND NOT EXISTS (SELECT FROM target)
    RETURNING alert.storm_id
)
SELECT incident_id FROM repeated UNION ALL SELECT storm_id FROM stormed
"""


def record_repeat(
    *,
    service_id: int,
    dedup_key: str,
    message: str,
    data: dict[str, Any],
    now: datetime,
    storms: bool = False,
) -> int | None:
    """Add an alert-repeat event (no actor) to the open incident of
    ``service_id`` with ``dedup_key`` and return its id; with ``storms``,
    when no such incident is open, count a trigger of that key firing in the
    service's open storm instead and return the storm's id. None when neither
    matched (nothing was written).

    ``data`` is encoded as Django's ``JSONField`` encodes it (``json.dumps``
    with no encoder), so the row is the one ``record_event`` writes.
    """
    params: list[Any] = [service_id, dedup_key, message, json.dumps(data), now]
    if storms:
        params += [now, service_id, dedup_key]
    with connection.cursor() as cursor:
        cursor.execute(_REPEAT_OR_STORM if storms else _REPEAT, params)
        row = cursor.fetchone()
    return None if row is None else int(row[0])


# --- An alert storm's new alerts and repeats (incidents.storms) ---------------
#
# ``storms.join_storming``: a trigger for the service's open storm, once the
# storm is storming (new alerts join it), without the service's row lock. The
# ORM path (``storms.lock_service`` + ``storms.room`` + ``storms.join``) takes
# the service's lock and the storm's row lock (FOR UPDATE) for about eight
# round trips, so every new alert of a storm queued behind the one before it.
# These two statements take neither: only a FOR KEY SHARE lock on the storm's
# row, which joiners share with each other and which the storm's writers that
# matter (a resolve, a split, the ORM path's ``room``: all ``FOR UPDATE``) wait
# for, and which waits for them.
#
# Why that keeps every rule of the ORM path (tests/test_storms.py holds the
# rows equal, and the races):
# - Exact threshold: these statements never open an incident; opening one is
#   decided only under the service's lock, as before.
# - A resolve or split of the storm (FOR UPDATE on its row) committed before
#   ``_LOCK_STORM`` is granted: the WHERE is re-checked on the new row version
#   (READ COMMITTED's re-check for locking reads), the storm no longer open,
#   no row comes back and the caller takes the ORM path. One that comes after
#   waits until this transaction commits, and sees the alert.
# - An alert never lives in an incident of its own and the storm at once:
#   ``_JOIN_STORM`` is a new statement, so its snapshot is taken after the
#   lock was granted. An incident for the key opened by a transaction that
#   held the storm's row first (the ORM path's ``room``, a split) has
#   committed by then and is seen by the NOT EXISTS: nothing is written and
#   the caller takes the ORM path, which joins that incident. One that starts
#   later must lock the storm's row FOR UPDATE first, waits for this
#   transaction, and then finds the key firing in the storm.
# - The count loses no increment and two joiners of one new key cannot both
#   insert: ON CONFLICT on the (storm, dedup key) unique index waits for the
#   other insert and then adds one to the committed row.
_LOCK_STORM = """
SELECT i.*,
       EXISTS (SELECT 1 FROM incidents_stormalert k
               WHERE k.storm_id = i.id AND k.dedup_key = %s) AS key_listed
FROM incidents_incident i
WHERE i.service_id = %s AND i.is_storm AND i.status IN ('triggered', 'acknowledged')
  AND (EXISTS (SELECT 1 FROM incidents_stormalert f
               WHERE f.storm_id = i.id AND f.dedup_key = %s AND f.status = 'firing')
       OR EXISTS (SELECT 1 FROM incidents_stormalert n
                  WHERE n.storm_id = i.id AND n.first_seen_at > %s))
FOR KEY SHARE OF i
"""

_JOIN_STORM = """
INSERT INTO incidents_stormalert AS a
    (storm_id, dedup_key, name, severity, source, details, status, count,
     first_seen_at, last_seen_at, resolved_at, split_into_id)
SELECT %s, %s, %s, %s, %s, %s, 'firing', 1, %s, %s, NULL, NULL
WHERE NOT EXISTS (
    SELECT 1 FROM incidents_incident o
    WHERE o.service_id = %s AND o.dedup_key = %s AND o.dedup_key <> ''
      AND o.status IN ('triggered', 'acknowledged')
)
ON CONFLICT (storm_id, dedup_key) DO UPDATE
SET count = a.count + 1, last_seen_at = EXCLUDED.last_seen_at, status = 'firing',
    resolved_at = NULL, split_into_id = NULL
RETURNING a.id
"""


def lock_storming(
    *, service_id: int, dedup_key: str, since: datetime
) -> tuple[Incident, bool] | None:
    """The service's open storm, its row locked FOR KEY SHARE until the
    transaction ends, if ``dedup_key`` fires in it or a new alert joined it
    after ``since``, and whether the key has a row in it already (any
    status); else None (nothing locked)."""
    found = list(Incident.objects.raw(_LOCK_STORM, [dedup_key, service_id, dedup_key, since]))
    if not found:
        return None
    storm = found[0]
    # raw() sets the columns that are not fields as plain attributes.
    return storm, bool(vars(storm)["key_listed"])


def join_storm(
    *,
    storm_id: int,
    service_id: int,
    dedup_key: str,
    name: str,
    severity: str,
    source: str,
    details: str,
    now: datetime,
) -> bool:
    """Count one trigger of ``dedup_key`` on the storm ``storm_id`` (locked by
    ``lock_storming`` in this transaction): a new row, or one more on its row
    (firing again). False, with nothing written, when an open incident of the
    service has the key."""
    with connection.cursor() as cursor:
        cursor.execute(
            _JOIN_STORM,
            [storm_id, dedup_key, name, severity, source, details, now, now, service_id, dedup_key],
        )
        return cursor.fetchone() is not None


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
