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
