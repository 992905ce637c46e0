"""Integration keys: create and rotate (the key is shown once), revoke, authenticate.

A key is 32 lowercase hex characters (128 random bits), the shape of a
PagerDuty integration key, so PagerDuty clients that check the routing key's
length accept it. Only its SHA-256 is stored: a lookup is one index probe and
a database leak reveals no working key. The prefix is for telling keys apart.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import transaction
from django.utils import timezone

from incidents.models import Service
from integrations.email_routes import attach_email_settings
from integrations.models import Integration, Kind

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
    integration.refresh_from_db()
    return NewKey(integration=integration, raw=raw)


def revoke_integration(integration: Integration) -> None:
    if integration.revoked_at is None:
        Integration.objects.filter(pk=integration.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        integration.refresh_from_db(fields=["revoked_at"])


def authenticate_key(raw: str) -> Integration | None:
    """The active integration with this key (its service loaded), or None."""
    raw = raw.strip().lower()
    if not KEY_RE.match(raw):
        return None
    # One query on every ingest request: key_hash is unique (one index probe)
    # and the service comes in the same statement.
    active = Integration.objects.select_related("service").filter(revoked_at__isnull=True)
    try:
        return active.get(key_hash=digest(raw))
    except Integration.DoesNotExist:
        return None
