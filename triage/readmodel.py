"""The version of "what is open": one Redis counter, bumped after every
committed change to an incident or its paging.

Readers cache what they show under the version they read (the dashboard's
list and counts: ``incidents.views``), so a reader that finds the version
unchanged can answer from the cache, or with 304 Not Modified, without
asking PostgreSQL. Writers never touch the cached entries: a bump makes
them unreachable, and they expire on their own.

Why a stale entry cannot be cached under a new version: the bump runs after
the commit (``bump_after_commit``), so a reader that sees the new version
started its reads after the change was visible. A reader that read the old
version and then the new rows stores them under the old key, which nobody
asks for again. The window the other way round (read the version, then a
change commits and bumps, then the reader reads old rows) stores rows older
than the version's under the old version only, since the reader keys by the
version it read first.

A second, slower counter versions the settings the dashboard shows beside
what is open (services' and people's names, the escalation levels and who
is on them): ``bump_settings`` bumps it and the first, and reads of those
settings are cached under it (``settings_cached``), so a change to one
incident does not read them again. The same argument holds for it: it is
bumped after the commit, and a reader reads it before what it caches.

If Redis is down, ``bump`` logs and gives up: readers cannot use the cache
then either (they read the version first), and entries live at most
``ENTRY_TTL`` seconds, so a bump lost in a blip is not wrong for long.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from django.core.cache import cache
from django.db import transaction
from django_redis import get_redis_connection
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

KEY = "triage:readmodel:open"
SETTINGS_KEY = "triage:readmodel:settings"
T = TypeVar("T")
# How long a cached read lives at most; a bump usually retires it first.
ENTRY_TTL = 600


def version() -> int:
    """The current version; raises RedisError/OSError when Redis is unavailable."""
    value = get_redis_connection("default").get(KEY)
    return int(value or 0)


def version_and(key: str) -> tuple[int, bytes | None]:
    """The current version and the raw value at ``key``, in one round trip
    (a reader's small entry that says which version it was written at);
    raises RedisError/OSError when Redis is unavailable."""
    current, value = get_redis_connection("default").mget([KEY, key])
    return int(current or 0), value


def settings_version_and(key: str) -> tuple[int, bytes | None]:
    """The settings' version and the raw value at ``key``, in one round trip
    (a reader's small entry that says which settings version it was read
    at); raises RedisError/OSError when Redis is unavailable."""
    current, value = get_redis_connection("default").mget([SETTINGS_KEY, key])
    return int(current or 0), value


def bump() -> None:
    """Something open changed: retire every cached read (now; see bump_after_commit)."""
    try:
        get_redis_connection("default").incr(KEY)
    except (RedisError, OSError):
        logger.warning("redis unavailable; the read model's version was not bumped")


def bump_throttled(name: str, seconds: int) -> None:
    """``bump``, at most once per ``seconds`` for ``name``: for changes that
    pour in (an alert storm's count) and may show a few seconds late rather
    than retire the cached dashboard on every one."""
    try:
        if get_redis_connection("default").set(f"{KEY}:throttle:{name}", 1, nx=True, ex=seconds):
            bump()
    except (RedisError, OSError):
        logger.warning("redis unavailable; the read model's version was not bumped")


def bump_after_commit() -> None:
    """Bump once the current transaction commits (at once outside one).

    Inside a transaction it also bumps at once. That bump is not needed for
    correctness (a reader in between reads the old rows and caches them
    under a version the commit's bump retires), but it makes the change
    visible to reads on the same connection before the commit, as the rows
    are: a view that changes an incident and then lists it, or a test, which
    runs in a transaction that never commits.
    """
    if transaction.get_connection().in_atomic_block:
        bump()
    transaction.on_commit(bump, robust=True)


def bump_settings() -> None:
    """A setting the dashboard shows changed (a service's or a person's name,
    an escalation level, who is on it): retire what is cached under the
    settings' version and, since rows show them, every cached read of what
    is open."""
    try:
        pipe = get_redis_connection("default").pipeline(transaction=False)
        pipe.incr(SETTINGS_KEY)
        pipe.incr(KEY)
        pipe.execute()
    except (RedisError, OSError):
        logger.warning("redis unavailable; the read model's version was not bumped")


def bump_settings_after_commit() -> None:
    """``bump_settings`` once the current transaction commits (and at once
    inside one, for the reason ``bump_after_commit`` gives)."""
    if transaction.get_connection().in_atomic_block:
        bump_settings()
    transaction.on_commit(bump_settings, robust=True)


def settings_cached(name: str, read: Callable[[], T]) -> T:
    """``read()``, cached under the settings' version: read again only after
    ``bump_settings``. Two small round trips to Redis (the version, then the
    entry) instead of ``read``'s queries; without Redis, ``read()``.

    Why a stale value cannot be returned: the entry's key holds the version
    read before ``read()`` ran, and every change to what ``read`` reads bumps
    that version after its commit (see the module's docstring).
    """
    try:
        current = int(get_redis_connection("default").get(SETTINGS_KEY) or 0)
        key = f"readmodel:settings:{name}:{current}"
        found: tuple[T] | None = cache.get(key)
    except (RedisError, OSError, ConnectionInterrupted):
        logger.warning("redis unavailable; settings read from PostgreSQL")
        return read()
    if found is not None:
        return found[0]
    value = read()
    try:
        cache.set(key, (value,), ENTRY_TTL)
    except (RedisError, OSError, ConnectionInterrupted):
        logger.warning("redis unavailable; settings not cached")
    return value
