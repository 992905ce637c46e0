"""Staff-managed exceptions to triage's outbound policy (``triage.outbound``).

The rules live in the ``triage`` app, not in ``paging``: contact methods,
post-mortem notices, the heartbeat ping and chat all send through the same
policy, and none of them should have to import paging to read it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from typing import ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


def parse_target(text: str) -> Network | str:
    """An allow-list entry: an address or CIDR network, or a lower-case host
    name. Raises ``ValueError`` saying what is wrong."""
    cleaned = text.strip().lower().rstrip(".")
    if cleaned.startswith("[") and cleaned.endswith("]"):
        cleaned = cleaned[1:-1]
    try:
        return ipaddress.ip_network(cleaned, strict=False)
    except ValueError:
        pass
    if any(char in cleaned for char in "/:") or not _HOST_NAME.match(cleaned):
        raise ValueError(
            f"{text.strip()!r} is neither a host name (ntfy.home.lan), an address "
            "(192.168.1.20) nor a network (192.168.1.0/24)"
        )
    return cleaned


def _validate_target(value: str) -> None:
    try:
        parse_target(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class OutboundAllowRule(models.Model):
    """A host name or network triage may send to although the outbound
    policy refuses it by default (a homelab ntfy on the LAN, say)."""

    target = models.CharField(
        max_length=255,
        unique=True,
        validators=[_validate_target],
        help_text="A host name (ntfy.home.lan), an address (192.168.1.20) or a network "
        "(192.168.1.0/24, fd00::/8).",
    )
    note = models.CharField(max_length=200, blank=True, help_text="Why this is allowed.")
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["target"]
        verbose_name = "outbound allow rule"

    def __str__(self) -> str:
        return self.target

    def clean(self) -> None:
        # One spelling per rule, so the unique constraint catches duplicates;
        # the field's validator reports a target that does not parse.
        with contextlib.suppress(ValueError):
            target = parse_target(self.target)
            if isinstance(target, str) or target.prefixlen < target.max_prefixlen:
                self.target = str(target)
            else:
                self.target = str(target.network_address)  # one address: no "/32"
