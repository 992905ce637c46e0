"""The outbound side of an import: where it may connect.

The URL comes from the admin running the command, and a self-hosted OnCall
(or a test stand-in) usually lives on a private address that triage's
outbound policy refuses. The admin's choice is the allowance: exactly the
host they named is allowed, on top of the usual policy. What the old system
answers is not trusted the same way: a ``next`` link or a redirect naming
another host would carry the token there, so redirects are not followed and
only the query of ``next`` is used, on the URL the admin gave.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit

from integrations.config_import.plan import ImportConfigError
from triage.outbound import Policy, current_policy


def base_url(url: str, *, strip: str = "") -> str:
    """``url`` checked and without a trailing slash (or ``strip``)."""
    url = url.strip().rstrip("/")
    if strip and url.endswith(strip):
        url = url[: -len(strip)].rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImportConfigError(f"{url!r} is not an http(s) URL.")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ImportConfigError(f"{url!r}: give the URL without a query, fragment or password.")
    return url


def policy_allowing(url: str) -> Policy:
    """The outbound policy plus the host the admin named on the command line."""
    host = urlsplit(url).hostname or ""
    policy = current_policy()
    return dataclasses.replace(policy, hosts=policy.hosts | {host.lower().rstrip(".")})
