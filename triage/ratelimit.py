"""Fixed-window rate limits counted in Redis, for everything that takes
requests from outside: integration keys (Alertmanager, Events API v2,
heartbeats), the public pages and report form, and logging in.

Keys: ``triage:ratelimit:<scope>:<client>:<window number>`` — one integer per
client and window, incremented on every attempt. It gets its expiry (one
second past the end of its window) in the same Lua call that creates it, so a
crash can never leave a counter that blocks a client for good; Redis holds at
most about one window per active client.

An attempt that turns out not to need counting (a login that succeeded) is
given back with ``refund``: counting first and refunding after keeps the
count exact under concurrent attempts, which checking first and counting after
would not (many attempts could all see room and all go ahead).

When Redis is flushed or restarted every client starts a fresh window: at
worst a sender gets one extra window's allowance, and nothing else is lost.
When Redis cannot be reached the request is allowed (fail open) and a warning
is logged: dropping alerts, or turning every reporter away during the very
outage they are reporting, is worse than letting a noisy sender through.

``hit_and_read`` reads one more Redis key in the same round trip:
the integration keys' version (``integrations.keys``) rides on the call
every ingest request makes anyway, so checking a cached key costs no round
trip of its own.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_redis import get_redis_connection
from redis.commands.core import Script
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

_INCREMENT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""
# The same, and the value of KEYS[2] read after the count (nil when absent).
_INCREMENT_AND_READ = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return {count, redis.call('GET', KEYS[2])}
"""
# Only a counter that still exists is decremented: DECR on a key that expired
# meanwhile would create one at -1 with no expiry, a budget that never ends.
_REFUND = """
if redis.call('EXISTS', KEYS[1]) == 1 then
    return redis.call('DECR', KEYS[1])
end
return 0
"""


# Loaded once per process (their SHA-1 computed once): ``register_script``
# on every call hashed the script again. Each is run on the connection given
# to it; a server that does not know it yet gets it loaded (NOSCRIPT).
_SCRIPTS = {
    source: Script(None, source.encode())  # type: ignore[arg-type]
    for source in (_INCREMENT, _INCREMENT_AND_READ, _REFUND)
}


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    count: int  # attempts in this window, this one included (0 when Redis was down)
    limit: int
    retry_after: int  # whole seconds until the window ends (0 when allowed)
    counted: str = ""  # the Redis key this attempt was counted in ("" when Redis was down)
    # The value of the key ``hit_and_read`` reads, read in the same call after
    # the count: None when it is absent, not asked for, or Redis was down.
    read: bytes | None = None


def key(scope: str, client: str, number: int) -> str:
    return f"triage:ratelimit:{scope}:{client}:{number}"


def hit(
    scope: str,
    client: str,
    *,
    limit: int,
    window: int = 60,
    now: float | None = None,
    connection: Any = None,
) -> Verdict:
    """Count one attempt by ``client`` in ``scope``: allowed while at most
    ``limit`` attempts fell in the current ``window``-second window."""
    return _hit(scope, client, limit=limit, window=window, now=now, connection=connection)


def hit_and_read(scope: str, client: str, *, limit: int, read: str, window: int = 60) -> Verdict:
    """``hit``, and the value of the Redis key ``read`` (``Verdict.read``),
    read in the same round trip after the count."""
    return _hit(scope, client, limit=limit, window=window, read_along=read)


def _hit(
    scope: str,
    client: str,
    *,
    limit: int,
    window: int,
    now: float | None = None,
    connection: Any = None,
    read_along: str = "",
) -> Verdict:
    now = time.time() if now is None else now
    number = int(now // window)
    read = None
    try:
        redis = connection if connection is not None else get_redis_connection("default")
        counted = key(scope, client, number)
        if read_along:
            answer = _SCRIPTS[_INCREMENT_AND_READ](
                keys=[counted, read_along], args=[window + 1], client=redis
            )
            count, read = int(answer[0]), answer[1]
        else:
            count = int(_SCRIPTS[_INCREMENT](keys=[counted], args=[window + 1], client=redis))
    except RedisError as exc:
        return not_checked(scope, client, limit=limit, error=exc)
    if count <= limit:
        return Verdict(
            allowed=True, count=count, limit=limit, retry_after=0, counted=counted, read=read
        )
    retry_after = max(1, math.ceil((number + 1) * window - now))
    return Verdict(
        allowed=False,
        count=count,
        limit=limit,
        retry_after=retry_after,
        counted=counted,
        read=read,
    )


def not_checked(scope: str, client: str, *, limit: int, error: Exception) -> Verdict:
    """The verdict when Redis could not be reached (fail open), logged. Also
    for a caller whose own Redis call just failed, so that one request does
    not wait for an unreachable Redis twice."""
    logger.warning(
        "rate limit %s not checked, Redis is unavailable: %s",
        scope,
        error,
        extra={"scope": scope, "client": client},
    )
    return Verdict(allowed=True, count=0, limit=limit, retry_after=0)


def refund(verdict: Verdict, *, connection: Any = None) -> None:
    """Give back the attempt ``verdict`` counted, if its window is still open."""
    if not verdict.counted:
        return
    try:
        redis = connection if connection is not None else get_redis_connection("default")
        _SCRIPTS[_REFUND](keys=[verdict.counted], client=redis)
    except RedisError as exc:
        # The attempt stays counted: at worst one more in this window.
        logger.warning("rate limit refund skipped, Redis is unavailable: %s", exc)


def client_ip(request: HttpRequest) -> str:
    """The client's address. With TRUSTED_PROXIES = N (> 0) it is the Nth
    address from the right of X-Forwarded-For — the one the outermost of our
    own proxies saw — so a client cannot pick its own address by sending the
    header; with 0 the header is ignored."""
    proxies = settings.TRUSTED_PROXIES
    if proxies:
        forwarded = [
            part.strip()
            for part in request.headers.get("X-Forwarded-For", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return str(request.META.get("REMOTE_ADDR", "unknown"))


View = Callable[..., HttpResponse]


def public_page(view: View) -> View:
    """Limit anonymous visitors of a public page per address.

    All public pages share one budget per address, ``PUBLIC_RATE_LIMIT``
    requests per ``PUBLIC_RATE_WINDOW`` seconds — far above what a person
    reading them needs, low enough that a scraper or a flood gets 429 before
    it costs the responders' database. Logged-in people are not limited here.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            verdict = hit(
                "public",
                client_ip(request),
                limit=settings.PUBLIC_RATE_LIMIT,
                window=settings.PUBLIC_RATE_WINDOW,
            )
            if not verdict.allowed:
                response = HttpResponse(
                    f"Too many requests from your address. Try again in {verdict.retry_after} s.\n",
                    status=429,
                    content_type="text/plain; charset=utf-8",
                )
                response["Retry-After"] = str(verdict.retry_after)
                return response
        return view(request, *args, **kwargs)

    return wrapper
