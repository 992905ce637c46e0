"""The live paging state in Redis. All of triage's paging Redis code is here.

Keys (all under the ``triage:paging:`` prefix):

``deadlines``  sorted set, member = incident id, score = Unix time its next
    escalation (or acknowledgement-timeout re-trigger) is due. Present while
    the incident has a deadline; removed on acknowledge (without an ack
    timeout) and resolve. Claiming a due member moves its score ``ESCALATION_CLAIM_LEASE``
    seconds into the future, so a second checker does not pick it up while
    the first works on it; if that worker dies, the member comes due again.
    A score may be earlier than the truth (the checker then finds nothing due
    and corrects it) but reconciliation never leaves one later.
``incident:<id>``  hash: ``level``, ``step``, ``paged`` (JSON list of the
    names paged now), ``paged_at``, ``next_at`` (ISO times). Expires a day
    after its last write, and is deleted on resolve.
``heartbeat``  Unix time of the last completed escalation pass.
``once:<name>``  rate limits (the external heartbeat ping), expiring by themselves.

When Redis is empty (flushed, restarted, replaced): nothing is lost.
PostgreSQL holds each incident's level, step and next deadline; the worker
rebuilds these keys at start, every reconciliation pass and on
``manage.py rebuild_paging_state``. Until then pages show paging state from
PostgreSQL, and an escalation that fell due meanwhile runs as soon as the
deadline is back in the index (the database condition makes it run once).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django_redis import get_redis_connection
from redis import Redis
from redis.client import Pipeline

from triage import readmodel

PREFIX = "triage:paging:"
DEADLINES = PREFIX + "deadlines"
HEARTBEAT = PREFIX + "heartbeat"
LIVE_TTL = 24 * 3600

# Atomically take up to ARGV[3] members due at ARGV[1] and push each one's
# score to ARGV[2] (the lease end). One round trip; two checkers running this
# at the same moment get disjoint sets, because Redis runs scripts one at a
# time. Cost: O(log N + due), whatever the number of open incidents.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[3])
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], ARGV[2], due[i])
end
return due
"""


def client() -> Redis:
    redis: Redis = get_redis_connection("default")
    return redis


def _incident_key(incident_id: int) -> str:
    return f"{PREFIX}incident:{incident_id}"


def claim_due(until: float, *, limit: int = 500) -> list[tuple[int, float]]:
    """(incident id, deadline) of deadlines up to ``until``, each claimed for a lease."""
    lease = until + settings.ESCALATION_CLAIM_LEASE
    flat = client().eval(_CLAIM, 1, DEADLINES, until, lease, limit)
    return [(int(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2)]


def set_deadline(incident_id: int, deadline: datetime | None) -> None:
    if deadline is None:
        client().zrem(DEADLINES, incident_id)
    else:
        client().zadd(DEADLINES, {str(incident_id): deadline.timestamp()})


def due_count(now: float) -> int:
    return int(client().zcount(DEADLINES, "-inf", now))


@dataclass(frozen=True)
class Live:
    level: int
    step: int
    paged: list[str]
    paged_at: datetime | None
    next_at: datetime | None


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def _parse(value: bytes | None) -> datetime | None:
    return datetime.fromisoformat(value.decode()) if value else None


def write_live(incident_id: int, live: Live, *, index: bool = True) -> None:
    """Store the live state; with ``index``, also set the deadline to ``live.next_at``.

    Only the engine, right after committing the move, passes ``index``:
    reconciliation's snapshot may be older than a concurrent move, so it goes
    through ``merge_deadlines`` instead.
    """
    pipe = client().pipeline()
    _queue_live(pipe, incident_id, live, index=index)
    pipe.execute()


def _queue_live(pipe: Pipeline, incident_id: int, live: Live, *, index: bool) -> None:
    key = _incident_key(incident_id)
    pipe.hset(
        key,
        mapping={
            "level": live.level,
            "step": live.step,
            "paged": json.dumps(live.paged),
            "paged_at": _iso(live.paged_at),
            "next_at": _iso(live.next_at),
        },
    )
    pipe.expire(key, LIVE_TTL)
    if index and live.next_at is None:
        pipe.zrem(DEADLINES, incident_id)
    elif index and live.next_at is not None:
        pipe.zadd(DEADLINES, {str(incident_id): live.next_at.timestamp()})
    pipe.incr(readmodel.KEY)  # the dashboard shows this state (triage.readmodel)


def write_live_many(lives: Sequence[tuple[int, Live]]) -> None:
    """``write_live`` (with ``index``) for many incidents, pipelined, with one
    ZADD / ZREM for all their deadlines: an escalation storm's chunk costs a
    few round trips, not one per incident."""
    pipe = client().pipeline(transaction=False)
    for incident_id, live in lives:
        _queue_live(pipe, incident_id, live, index=False)
    due = {
        str(incident_id): live.next_at.timestamp() for incident_id, live in lives if live.next_at
    }
    if due:
        pipe.zadd(DEADLINES, due)
    done = [incident_id for incident_id, live in lives if live.next_at is None]
    if done:
        pipe.zrem(DEADLINES, *done)
    pipe.execute()


def write_live_snapshots(lives: Sequence[tuple[int, Live]]) -> None:
    """``write_live`` without ``index`` for many incidents, in one pipeline
    (reconciliation: its deadlines go through ``merge_deadlines``)."""
    pipe = client().pipeline(transaction=False)
    for incident_id, live in lives:
        _queue_live(pipe, incident_id, live, index=False)
    pipe.execute()


def forget(incident_id: int) -> None:
    pipe = client().pipeline()
    pipe.delete(_incident_key(incident_id))
    pipe.zrem(DEADLINES, incident_id)
    pipe.incr(readmodel.KEY)  # the dashboard shows this state (triage.readmodel)
    pipe.execute()


def forget_many(incident_ids: Sequence[int]) -> None:
    """``forget`` for many incidents, in one round trip."""
    pipe = client().pipeline()
    for incident_id in incident_ids:
        pipe.delete(_incident_key(incident_id))
    pipe.zrem(DEADLINES, *incident_ids)
    pipe.incr(readmodel.KEY)  # the dashboard shows this state (triage.readmodel)
    pipe.execute()


def read_live(incident_ids: Sequence[int]) -> dict[int, Live]:
    """Live state of these incidents (missing ones are simply absent)."""
    if not incident_ids:
        return {}
    pipe = client().pipeline()
    for incident_id in incident_ids:
        pipe.hgetall(_incident_key(incident_id))
    found: dict[int, Live] = {}
    for incident_id, raw in zip(incident_ids, pipe.execute(), strict=True):
        if raw:
            found[incident_id] = Live(
                level=int(raw[b"level"]),
                step=int(raw[b"step"]),
                paged=json.loads(raw[b"paged"]),
                paged_at=_parse(raw.get(b"paged_at")),
                next_at=_parse(raw.get(b"next_at")),
            )
    return found


def merge_deadlines(deadlines: Iterable[tuple[int, datetime]]) -> int:
    """Put the PostgreSQL deadlines into the index, never moving one later.

    ``ZADD LT`` adds missing members and lowers scores that are later than
    the truth, but leaves earlier ones (and claims in flight) alone: a
    snapshot read while escalations run cannot push a deadline past its due
    time. Members of incidents that were resolved meanwhile are not removed
    here; when they come due, the checker finds nothing to do and drops them.
    """
    pipe = client().pipeline()
    count = 0
    for incident_id, deadline in deadlines:
        pipe.zadd(DEADLINES, {str(incident_id): deadline.timestamp()}, lt=True)
        count += 1
        if count % 2000 == 0:
            pipe.execute()
    pipe.execute()
    return count


def record_heartbeat(now: float) -> None:
    client().set(HEARTBEAT, now)


def once_per(name: str, seconds: int) -> bool:
    """True for the first caller in each window of ``seconds`` (across processes)."""
    return bool(client().set(f"{PREFIX}once:{name}", 1, nx=True, ex=seconds))


def heartbeat() -> float | None:
    value = client().get(HEARTBEAT)
    return float(value) if value else None


def celery_queue_length(queue: str = "celery") -> int:
    return int(client().llen(queue))
