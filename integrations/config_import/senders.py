"""What to paste into a sender for a key an import made: where to send, and the key."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from integrations.keys import NewKey
from integrations.models import Kind


def sender_lines(new: NewKey) -> list[str]:
    integration = new.integration
    lines = [f"{integration.service.name} / {integration.name} ({integration.get_kind_display()})"]
    if integration.kind == Kind.ALERTMANAGER:
        url = settings.BASE_URL + reverse("integrations-alertmanager-key", args=["KEY"])
        lines.append(f"webhook URL: {url.replace('KEY', new.raw)}")
    elif integration.kind == Kind.EVENTS_V2:
        lines.append(f"Events API v2 URL: {settings.BASE_URL}{reverse('integrations-enqueue')}")
        lines.append(f"routing key: {new.raw}")
    else:  # a kind this list does not know yet: the integrations page says where
        lines.append(f"key: {new.raw} (where to send: {settings.BASE_URL}/integrations)")
    return lines
