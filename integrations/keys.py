"""Integration keys: create and rotate (the key is shown once), revoke, authenticate.

A key is 32 lowercase hex characters (128 random bits), the shape of a
PagerDuty integration key, so PagerDuty clients that check the routing key's
length accept it. Only its SHA-256 is stored: a lookup is one index probe and
a database leak reveals no working key. The prefix is for telling keys apart.

``admit`` is the Events API v2 endpoints' look-up: the same answer as
``authenticate_key``, kept in the process's memory between requests and
checked on every one against a version in Redis read in the rate limiter's
round trip (see ``admit`` for why a stale entry cannot be used).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import transaction
from django.db.models import DEFERRED
from django.utils import timezone
from django_redis import get_redis_connection
from redis.commands.core import Script
from redis.exceptions import RedisError

from incidents.models import Service
from integrations.email_routes import attach_email_settings
from integrations.models import Integration, Kind
from triage import ratelimit

logger = logging.getLogger(__name__)

KEY_RE = re.compile(r"^[0-9a-f]{32}$")
PREFIX_LENGTH = 8


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _new_key() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True)
class NewKey:
    integration: Integration
    raw: str  # shown to the user once, never stored


def create_integration(
    *,
    service: Service,
    kind: str,
    name: str,
    actor: AbstractBaseUser | AnonymousUser | None = None,
    email: dict[str, Any] | None = None,
    **options: Any,
) -> NewKey:
    """A new integration with a fresh key. ``options`` are Integration fields
    (grouping, severity_label, default_severity, rate_limit_per_minute,
    heartbeat_timeout_seconds); ``email`` the settings of an email
    integration (see ``email_routes.attach_email_settings``), which always
    gets its address here."""
    raw = _new_key()
    with transaction.atomic():
        integration = Integration.objects.create(
            service=service,
            kind=kind,
            name=name,
            key_prefix=raw[:PREFIX_LENGTH],
            key_hash=digest(raw),
            created_by=actor if isinstance(actor, User) else None,
            **options,
        )
        if kind == Kind.EMAIL:
            attach_email_settings(integration, **(email or {}))
    return NewKey(integration=integration, raw=raw)


def rotate_key(integration: Integration) -> NewKey:
    """Replace the key; the old one stops working at once. A revoked
    integration stays revoked (rotate does not bring it back)."""
    raw = _new_key()
    with transaction.atomic():
        Integration.objects.filter(pk=integration.pk).update(
            key_prefix=raw[:PREFIX_LENGTH], key_hash=digest(raw), rotated_at=timezone.now()
        )
        bump_after_commit()  # ``update`` sends no signal
    integration.refresh_from_db()
    return NewKey(integration=integration, raw=raw)


def revoke_integration(integration: Integration) -> None:
    if integration.revoked_at is None:
        Integration.objects.filter(pk=integration.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        integration.refresh_from_db(fields=["revoked_at"])
        bump_after_commit()  # ``update`` sends no signal


def authenticate_key(raw: str) -> Integration | None:
    """The active integration with this key (its service loaded), or None."""
    raw = raw.strip().lower()
    if not KEY_RE.match(raw):
        return None
    return _query(digest(raw))


# --- The Events API v2 look-up, cached in the process -------------------------
#
# Why a cached entry is never used after the change that retired it commits:
# - Every write that can change what ``authenticate_key`` answers (an
#   integration created, saved, rotated, revoked or deleted, a service saved
#   or deleted) sets ``VERSION_KEY`` to a new random value after its commit
#   (``bump_after_commit``: the model signals ``integrations.apps`` connects,
#   and ``rotate_key`` and ``revoke_integration``, whose ``update`` sends
#   none).
# - An entry holds the version read *before* the query that filled it. A
#   change committing after that read bumps the version after its commit, so
#   the entry carries a version that is no longer current. (Read after the
#   query, a bump landing in between would tag the old rows as current.)
# - Every use reads the current version first, in the rate limiter's round
#   trip, and uses the entry only when it is the one the entry holds;
#   otherwise it queries again. So a request that starts after a revoke (or
#   rotation) returned finds the key gone, in every process, as the query
#   would. A request already past its check when the commit lands was
#   accepted before the revoke, as it would be without the cache.
# - Versions are random, not counted: a Redis restarted or flushed starts
#   without the key, the next reader sets a fresh random one, and no old
#   entry can match it (a counter would start over and match again).
# - Redis down: no version can be read, nothing is cached or used, every
#   request queries (as before the cache). A bump that fails (Redis
#   unreachable for the writer but not for the readers) is logged as an
#   error and empties this process's cache; other processes' entries then
#   expire after ``MAX_AGE`` seconds at the latest: the one bounded case
#   where a revoked key can work on.
# Entries are immutable tuples in a dict; reads, writes and ``clear`` are
# atomic under the GIL, so threads share it without a lock. Each request gets
# its own model instances built from the entry (nothing it does to them
# reaches the cache).

VERSION_KEY = "triage:integration-keys:version"
MAX_AGE = 60.0  # seconds: the bound for the failed-bump case above
MAX_ENTRIES = 10_000  # more keys than that in use: start again (no unbounded growth)

# Read the version, setting a fresh one when Redis has none (restarted, flushed).
_READ_VERSION = Script(
    None,  # type: ignore[arg-type]
    b"""
local version = redis.call('GET', KEYS[1])
if not version then
    version = ARGV[1]
    redis.call('SET', KEYS[1], version)
end
return version
""",
)

# digest -> (version, monotonic time filled, integration row, service row)
Entry = tuple[bytes, float, tuple[Any, ...], tuple[Any, ...]]
_cache: dict[str, Entry] = {}

# The heartbeat's own fields change on every ping (``services.record_ping``),
# which therefore retires nothing (``integrations.apps``): they are left out
# of an entry, so an instance built from one loads them from the database if
# anything reads them.
VOLATILE = frozenset({"last_ping_at", "heartbeat_due_at", "heartbeat_down"})


def bump() -> None:
    """Retire every cached key look-up, in every process (now)."""
    try:
        get_redis_connection("default").set(VERSION_KEY, uuid.uuid4().hex)
    except (RedisError, OSError) as exc:
        _cache.clear()
        logger.error(
            "Integration key caches not retired, Redis is unavailable: other workers may "
            "accept a changed key for up to %d s: %s",
            MAX_AGE,
            exc,
        )


def bump_after_commit() -> None:
    """``bump`` after the current transaction commits (at once outside one).

    Inside a transaction it also bumps at once: not needed for correctness (a
    reader in between caches the old rows under a version the commit's bump
    retires) but it makes the change visible to requests on the same
    connection before the commit, as the rows are (a test, which never
    commits)."""
    if transaction.get_connection().in_atomic_block:
        bump()
    transaction.on_commit(bump, robust=True)


def _read_version() -> bytes:
    """The keys' current version (one round trip); raises RedisError."""
    redis = get_redis_connection("default")
    version: bytes = _READ_VERSION(keys=[VERSION_KEY], args=[uuid.uuid4().hex], client=redis)
    return version


_INTEGRATION_FIELDS = [field.attname for field in Integration._meta.concrete_fields]
_SERVICE_FIELDS = [field.attname for field in Service._meta.concrete_fields]


def _values(instance: Any, skip: frozenset[str] = frozenset()) -> tuple[Any, ...]:
    return tuple(
        DEFERRED if field.attname in skip else getattr(instance, field.attname)
        for field in instance._meta.concrete_fields
    )


def _built(entry: Entry) -> Integration:
    """Fresh instances from an entry, as the query would have built them."""
    integration = Integration.from_db("default", _INTEGRATION_FIELDS, entry[2])
    integration.service = Service.from_db("default", _SERVICE_FIELDS, entry[3])
    return integration


def _usable(entry: Entry, cached: Integration, kind: str) -> bool:
    return cached.kind == kind and time.monotonic() - entry[1] < MAX_AGE


def _remember(digested: str, version: bytes, integration: Integration) -> None:
    """Cache ``integration`` (just queried, of the kind asked for) under the
    version read before the query."""
    if len(_cache) >= MAX_ENTRIES:
        _cache.clear()
    _cache[digested] = (
        version,
        time.monotonic(),
        _values(integration, VOLATILE),
        _values(integration.service),
    )


@dataclass(frozen=True)
class Admitted:
    """``admit``'s answer: the active integration of a key (None: unknown,
    revoked or rotated) and the verdict of the attempt it counted (None when
    nothing was counted: no integration, or one of another kind)."""

    integration: Integration | None
    verdict: ratelimit.Verdict | None


def _count(integration: Integration) -> ratelimit.Verdict:
    return ratelimit.hit(
        "integration", str(integration.pk), limit=integration.rate_limit_per_minute
    )


def _count_and_read_version(integration: Integration) -> ratelimit.Verdict:
    return ratelimit.hit_and_read(
        "integration",
        str(integration.pk),
        limit=integration.rate_limit_per_minute,
        read=VERSION_KEY,
    )


def admit(raw: str, kind: str) -> Admitted:
    """The active integration of ``raw`` (what ``authenticate_key`` finds)
    and, when it is of ``kind``, one attempt counted against its rate limit.

    A key of ``kind`` this process has seen costs no query: the rate
    limiter's round trip brings the keys' version back, and the cached
    integration is used when the version is the one it was cached under (why
    that is safe: the comment above ``VERSION_KEY``). A key not cached costs
    the version (one round trip), the query, then the count. A key of another
    kind is counted nowhere (its own endpoint's budget stays whole) and is
    never cached, so it costs the query every time, as before the cache.
    """
    raw = raw.strip().lower()
    if not KEY_RE.match(raw):
        return Admitted(None, None)
    digested = digest(raw)
    entry = _cache.get(digested)
    cached = _built(entry) if entry is not None else None
    if entry is not None and cached is not None and _usable(entry, cached, kind):
        verdict = _count_and_read_version(cached)
        if verdict.read == entry[0]:
            return Admitted(cached, verdict)
        # Retired (or Redis is down): ask the database, under the version
        # just read. The attempt is counted already: counted again only if
        # the key now names another integration or limit.
        _cache.pop(digested, None)
        integration = _query(digested)
        if integration is None or integration.kind != kind:
            return Admitted(integration, None)
        if verdict.read is not None:
            _remember(digested, verdict.read, integration)
        if (integration.pk, integration.rate_limit_per_minute) != (cached.pk, verdict.limit):
            verdict = _count(integration)
        return Admitted(integration, verdict)
    try:
        version = _read_version()
    except (RedisError, OSError) as exc:
        return _uncached(digested, kind, exc)
    integration = _query(digested)
    if integration is None or integration.kind != kind:
        return Admitted(integration, None)
    _remember(digested, version, integration)
    return Admitted(integration, _count(integration))


def _uncached(digested: str, kind: str, error: Exception) -> Admitted:
    """Redis is unreachable: the query alone, and the rate limit not checked
    (not tried again for the count: a request waits for Redis once)."""
    integration = _query(digested)
    if integration is None or integration.kind != kind:
        return Admitted(integration, None)
    verdict = ratelimit.not_checked(
        "integration", str(integration.pk), limit=integration.rate_limit_per_minute, error=error
    )
    return Admitted(integration, verdict)


def _query(digested: str) -> Integration | None:
    # One query: key_hash is unique (one index probe) and the service comes
    # in the same statement.
    active = Integration.objects.select_related("service").filter(revoked_at__isnull=True)
    try:
        return active.get(key_hash=digested)
    except Integration.DoesNotExist:
        return None
