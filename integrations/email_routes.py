"""Email integrations' addresses: made up at creation, looked up per message.

Each email integration has its own address, as in PagerDuty:
``<service slug>+<10 random hex digits>@EMAIL_INGEST_DOMAIN`` unless staff
choose one. The random part keeps it from being guessed, since whoever knows
an address can open incidents; to change a leaked one, edit it in the admin
(*Email integration settings*). Addresses are stored lower case and unique,
so routing a message is one probe of that unique index.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from django.conf import settings

from incidents.models import Service
from integrations.models import EmailSettings, Integration, Kind

SLUG_IN_ADDRESS = 40  # a local part may be 64 characters (RFC 5321)


def new_address(service: Service) -> str:
    local = f"{service.slug[:SLUG_IN_ADDRESS]}+{secrets.token_hex(5)}"
    return f"{local}@{settings.EMAIL_INGEST_DOMAIN}"


def attach_email_settings(
    integration: Integration, *, address: str = "", **options: Any
) -> EmailSettings:
    """The settings row of a new email integration. ``options`` are
    EmailSettings fields (dedup_header, dedup_pattern, resolve_by_subject,
    resolve_pattern); a blank ``address`` gets a new one."""
    address = (address or new_address(integration.service)).strip().lower()
    return EmailSettings.objects.create(integration=integration, address=address, **options)


def integration_for(recipients: Iterable[str]) -> Integration | None:
    """The active email integration of the first of these addresses that has one
    (its service and settings loaded), or None."""
    wanted = [address.strip().lower() for address in recipients if address.strip()]
    if not wanted:
        return None
    found = {
        row.address: row.integration
        for row in EmailSettings.objects.select_related("integration__service").filter(
            address__in=wanted, integration__kind=Kind.EMAIL, integration__revoked_at__isnull=True
        )
    }
    return next((found[address] for address in wanted if address in found), None)
