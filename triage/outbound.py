"""triage's outbound policy: the one place that decides where triage may
connect when a person or an operator points it at a URL (contact methods,
``POSTMORTEM_NOTIFY_URL``, ``ESCALATION_HEARTBEAT_URL``, chat).

What is refused, and why
    Any responder can add a contact method and press "Send test
    notification", so without a policy triage would send any method, headers
    and body to any address its workers can reach (the cloud metadata
    service, Redis, PostgreSQL, the admin of the router) and report back
    what answered: a port scanner with triage's network position.
    So triage refuses
    - apprise schemes not listed in ``OUTBOUND_SCHEMES`` (the default lists
      services apprise reaches over HTTP(S) or SMTP, the two transports
      guarded here; syslog, MQTT, XMPP and desktop notifications are out);
    - connections to any address that is not ordinary public unicast:
      loopback (127.0.0.0/8, ::1), link-local (169.254.0.0/16 with the cloud
      metadata address 169.254.169.254, fe80::/10), private (10/8,
      172.16/12, 192.168/16), unique-local (fc00::/7), site-local,
      unspecified (0.0.0.0, ::), shared CGNAT space (100.64.0.0/10),
      multicast, reserved and documentation ranges, and the IPv6 forms that
      carry one of those (IPv4-mapped ``::ffff:127.0.0.1``, NAT64, 6to4,
      Teredo).
    A host name is resolved when triage connects, every address it resolves
    to is checked, and triage connects only to an address it checked, so
    DNS that changes between the check and the connection (rebinding) gets
    nowhere. A redirect is a new connection and is checked the same way
    (apprise is also told not to follow redirects at all).
    People see only "refused by triage's outbound policy" for a refused
    destination: nothing about ports, statuses or what answered.

How to allow a destination
    Staff add an "outbound allow rule" in the admin (``/admin/triage/``): a
    host name (``ntfy.home.lan``: whatever it resolves to is allowed) or an
    address or network (``192.168.1.20``, ``192.168.1.0/24``, ``fd00::/8``:
    those addresses under any name). Operators can give the same in
    ``OUTBOUND_ALLOW`` (comma-separated), for bootstrapping. Public
    addresses need no rule.

How it is enforced
    ``with guarded(): <requests / urllib3 / urllib / smtplib / httpx call>``.
    For the duration of the block, in this thread or asyncio task only, every
    TCP connection opened through urllib3 (requests, hence apprise),
    ``socket.create_connection`` (smtplib, urllib, httpx's sync transport)
    or ``anyio.connect_tcp`` (httpx's async transport) goes through
    ``Attempt.connect``. Outside such a block nothing changes. Async code
    builds the policy first (``await sync_to_async(current_policy)()``) and
    passes it: ``with guarded(policy): await client.post(...)``. A
    connection a long-lived client opened outside a guarded block is not
    checked when it is reused inside one: use a fresh client.
    With ``HTTP(S)_PROXY`` set, requests connect to the proxy, so the proxy's
    address is what is checked: allow it, and let the proxy refuse the rest.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import anyio
import apprise
import urllib3.connection
import urllib3.util.connection
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from triage.models import Network, OutboundAllowRule, parse_target

logger = logging.getLogger(__name__)

REFUSED = "refused by triage's outbound policy"
COULD_NOT_DELIVER = "could not deliver"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_SHARED_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


class OutboundRefused(OSError):
    """A connection the outbound policy refuses. An ``OSError``, so every HTTP
    and mail library treats it as a failed connection and never sends."""


def is_public(address: Address) -> bool:
    """An ordinary public unicast address, the only kind allowed without a rule."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
        if address.sixtofour is not None and not is_public(address.sixtofour):
            return False
        if address.teredo is not None and not all(map(is_public, address.teredo)):
            return False
        if address.is_site_local:
            return False
    elif address in _SHARED_CGNAT:
        return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped or NAT64 address reaches."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _host_name(host: str) -> str:
    return host.strip().strip("[]").lower().rstrip(".")


@dataclass(frozen=True)
class Policy:
    schemes: frozenset[str]
    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    def allows_scheme(self, url: str) -> bool:
        return url.split("://", 1)[0].strip().lower() in self.schemes if "://" in url else False

    def allows(self, host: str, address: Address) -> bool:
        if isinstance(address, ipaddress.IPv6Address):
            address = _embedded_ipv4(address) or address
        if is_public(address) or _host_name(host) in self.hosts:
            return True
        return any(address in network for network in self.networks)


def _policy_from(targets: list[str], schemes: list[str]) -> Policy:
    hosts: set[str] = set()
    networks: list[Network] = []
    for text in targets:
        try:
            target = parse_target(text)
        except ValueError:
            logger.warning("outbound allow rule ignored: not a host or network")
            continue
        if isinstance(target, str):
            hosts.add(target)
        else:
            networks.append(target)
    return Policy(
        schemes=frozenset(scheme.lower() for scheme in schemes),
        hosts=frozenset(hosts),
        networks=tuple(networks),
    )


def current_policy() -> Policy:
    """The policy as configured now: one query for the staff's rules. Async
    code builds it with ``sync_to_async(current_policy)`` and passes it to
    ``guarded``."""
    rules = list(OutboundAllowRule.objects.values_list("target", flat=True))
    return _policy_from([*settings.OUTBOUND_ALLOW, *rules], settings.OUTBOUND_SCHEMES)


def check_settings() -> None:
    """Stop at start on an ``OUTBOUND_*`` value that cannot mean anything."""
    for text in settings.OUTBOUND_ALLOW:
        try:
            parse_target(text)
        except ValueError as exc:
            raise ImproperlyConfigured(f"OUTBOUND_ALLOW: {exc}") from None
    # apprise's plugin registry is untyped: name the type of what it returns.
    schemas = cast("Callable[[], Iterable[str]]", apprise.apprise.N_MGR.schemas)
    unknown = sorted(set(settings.OUTBOUND_SCHEMES) - set(schemas()))
    if unknown:
        raise ImproperlyConfigured(
            f"OUTBOUND_SCHEMES names schemes apprise does not know: {', '.join(unknown)}"
        )


def refused_hosts(url: str, *, policy: Policy | None = None) -> list[str]:
    """The hosts of an apprise URL that resolve, now, to an address the policy
    refuses (for the contact-method form; sending checks again at connect
    time). A host that does not resolve now is not refused here: DNS may
    just be down, and the connection is checked when it is made. Only hosts
    apprise really connects to are looked up: for services like Telegram the
    "host" of the URL is a token, which must not go to a DNS server."""
    policy = policy or current_policy()
    channel = apprise.Apprise()
    if not channel.add(url):
        return []
    refused = []
    for host in _destinations(channel[0]):
        try:
            answers = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            continue
        if not all(_allowed(policy, host, str(answer[4][0])) for answer in answers):
            refused.append(host)
    return refused


def _destinations(plugin: Any) -> list[str]:
    hosts = []
    if any("{host}" in template for template in getattr(plugin, "templates", ())):
        hosts.append(_host_name(str(plugin.host)))
    smtp_host = getattr(plugin, "smtp_host", None)  # mailto's ?smtp=
    if smtp_host:
        hosts.append(_host_name(str(smtp_host)))
    return [host for host in dict.fromkeys(hosts) if host]


def _allowed(policy: Policy, host: str, address: str) -> bool:
    try:
        return policy.allows(host, ipaddress.ip_address(address))
    except ValueError:
        return False  # an answer we cannot read (a scoped address): not trusted


# --- the guard ------------------------------------------------------------------

T = TypeVar("T")


@dataclass
class Attempt:
    """What happened to the connections of one guarded block, in words a
    person can read (``reason``)."""

    policy: Policy
    refused: bool = False
    problem: str = ""  # the latest failure of an allowed destination

    def check(self, host: str, port: int, family: int = 0) -> list[str]:
        """Resolve once; the addresses to connect to, all of them allowed."""
        name = _host_name(host)
        try:
            answers = socket.getaddrinfo(name, port, family, socket.SOCK_STREAM)
        except socket.gaierror:
            self.problem = f"could not find {name}"
            raise
        addresses = list(dict.fromkeys(str(answer[4][0]) for answer in answers))
        denied = [address for address in addresses if not _allowed(self.policy, name, address)]
        if denied or not addresses:
            self.refused = True
            logger.warning(
                "outbound connection refused by policy",
                extra={"host": name, "addresses": denied},
            )
            raise OutboundRefused(f"{name} is refused by triage's outbound policy")
        return addresses

    def connect(self, host: str, port: int, open_one: Callable[[str], T], family: int = 0) -> T:
        """Connect to the first checked address that answers. Only numeric
        addresses reach ``open_one``, so nothing resolves the name again."""
        error: OSError = OSError(f"no address for {host}")
        for address in self.check(host, port, family):
            try:
                return open_one(address)
            except OSError as exc:
                error = exc
        self.failed(host, error)
        raise error

    def failed(self, host: str, error: BaseException) -> None:
        name = _host_name(host)
        if isinstance(error, ConnectionRefusedError):
            self.problem = f"connection refused by {name}"
        elif isinstance(error, TimeoutError):
            self.problem = f"timed out reaching {name}"
        else:
            self.problem = f"could not reach {name}"

    def answered(self, host: str, status: int) -> None:
        if status >= 300:
            self.problem = f"HTTP {status} from {_host_name(host)}"

    def reason(self) -> str:
        """Why the block did not deliver, for the person who asked."""
        if self.refused:
            return REFUSED
        return self.problem[:250] or COULD_NOT_DELIVER


# A context variable, not a global: gunicorn and Celery threads each see only
# their own guard, an asyncio task its own, and apprise's worker threads get
# a copy of the caller's context (``apprise.apprise.submit_with_context``).
_current: ContextVar[Attempt | None] = ContextVar("triage_outbound_attempt", default=None)


@contextmanager
def guarded(policy: Policy | None = None) -> Iterator[Attempt]:
    """Every TCP connection opened inside the block obeys the policy."""
    attempt = Attempt(policy or current_policy())
    token = _current.set(attempt)
    try:
        yield attempt
    finally:
        _current.reset(token)


# --- the connection hooks -------------------------------------------------------
# Installed once, at import, by wrapping the functions each library looks up
# at call time. Safe for everything else in the process: outside a guarded
# block (no attempt in the current context) each wrapper calls the original
# with the same arguments, so Redis, PostgreSQL (libpq, not Python sockets)
# and every other connection are untouched. Inside one, the original still
# does the connecting, with a checked numeric address instead of the name;
# TLS keeps verifying the certificate against the name (urllib3, smtplib and
# httpcore pass the host name to the TLS layer separately).

_urllib3_create_connection = urllib3.util.connection.create_connection
_socket_create_connection = socket.create_connection
_urllib3_getresponse = urllib3.connection.HTTPConnection.getresponse
_anyio_connect_tcp = anyio.connect_tcp


def _guarded_urllib3_connect(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
    attempt = _current.get()
    if attempt is None:
        return _urllib3_create_connection(address, *args, **kwargs)
    host, port = address
    return attempt.connect(
        host,
        port,
        lambda ip: _urllib3_create_connection((ip, port), *args, **kwargs),
        family=urllib3.util.connection.allowed_gai_family(),
    )


def _guarded_socket_connect(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
    attempt = _current.get()
    if attempt is None:
        return _socket_create_connection(address, *args, **kwargs)
    host, port = address
    return attempt.connect(
        host, port, lambda ip: _socket_create_connection((ip, port), *args, **kwargs)
    )


def _guarded_getresponse(self: urllib3.connection.HTTPConnection, *args: Any, **kwargs: Any) -> Any:
    attempt = _current.get()
    if attempt is None:
        return _urllib3_getresponse(self, *args, **kwargs)
    try:
        response = _urllib3_getresponse(self, *args, **kwargs)
    except TimeoutError as exc:
        attempt.failed(self.host, exc)
        raise
    attempt.answered(self.host, response.status)
    return response


async def _guarded_anyio_connect(remote_host: Any, remote_port: int, **kwargs: Any) -> Any:
    attempt = _current.get()
    if attempt is None:
        return await _anyio_connect_tcp(remote_host, remote_port, **kwargs)
    host = str(remote_host)
    if kwargs.get("tls") and not kwargs.get("tls_hostname"):
        kwargs["tls_hostname"] = _host_name(host)  # verify the name, not the address
    # Resolving blocks; a worker thread keeps the event loop running meanwhile.
    addresses = await anyio.to_thread.run_sync(attempt.check, host, remote_port)
    error: OSError = OSError(f"no address for {host}")
    for address in addresses:
        try:
            return await _anyio_connect_tcp(address, remote_port, **kwargs)
        except OSError as exc:
            error = exc
    attempt.failed(host, error)
    raise error


def _install() -> None:
    if socket.create_connection.__name__ == _guarded_socket_connect.__name__:
        return  # already installed: a reloaded module must not wrap its own wrappers
    urllib3.util.connection.create_connection = _guarded_urllib3_connect
    socket.create_connection = _guarded_socket_connect  # type: ignore[assignment]
    urllib3.connection.HTTPConnection.getresponse = _guarded_getresponse  # type: ignore[method-assign]
    anyio.connect_tcp = _guarded_anyio_connect


_install()


# --- sending through apprise ----------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    ok: bool
    reason: str = ""  # a plain sentence to show a person; "" when delivered


def send_apprise(url: str, *, title: str, body: str) -> Delivery:
    """Send one message to an apprise URL under the policy. ``reason`` is safe
    to show to whoever owns the URL; apprise's own words go to the log only."""
    # Not in parallel (the guard follows the calling thread) and no
    # redirects: a webhook that redirects is a misconfiguration, and a URL
    # that asks for them (``?redirect=yes``) still has every hop checked.
    channel = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False, http_redirects=False))
    if not channel.add(url):
        return Delivery(False, "not a valid apprise URL")
    policy = current_policy()
    if not policy.allows_scheme(url):
        logger.warning("outbound scheme refused by policy", extra={"scheme": url[:20]})
        return Delivery(False, REFUSED)
    with guarded(policy) as attempt:
        result = channel.notify(title=title, body=body)
    if result:
        return Delivery(True)
    details = [entry.message for entry in result.logs() if entry.level in ("WARNING", "ERROR")]
    logger.warning(
        "outbound delivery failed",
        extra={"reason": attempt.reason(), "detail": details[-1] if details else ""},
    )
    return Delivery(False, attempt.reason())
