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
fires in the service's open storm (what ``incidents.storms.repeat`` does in
two statements), so during a storm a repeat is one statement too, and a new
alert's transaction need not look for either again before the service's
lock.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.db import connection

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
#   (the caller then takes the full path, as after ``storms.repeat``).
# - At most one storm per service is open (``incident_one_open_storm_per_
#   service``) and it lists a key once (``storm_alert_one_per_key``): at most
#   one row is updated.
# - The storm incident's row is not locked, as ``storms.repeat`` does not lock
#   it (the lock order of ``incidents.storms``: a repeat locks one storm alert
#   row and nothing else).
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
