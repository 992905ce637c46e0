"""System checks for configuration that is valid syntax but a bad idea."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register


@register(Tags.security, deploy=True)
def check_secret_key_strength(**_: Any) -> list[CheckMessage]:
    if len(set(settings.SECRET_KEY)) < 5 or len(settings.SECRET_KEY) < 50:
        return [
            Warning(
                "SECRET_KEY is short or repetitive.",
                hint="Generate one: python -c 'import secrets; print(secrets.token_urlsafe(50))'",
                id="triage.W001",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_public_url(**_: Any) -> list[CheckMessage]:
    if settings.BASE_URL.startswith("http://") and not settings.DEBUG:
        return [
            Warning(
                f"BASE_URL is {settings.BASE_URL!r}; links in pages will use plain HTTP.",
                hint="Set BASE_URL to the https:// address people use to reach triage.",
                id="triage.W002",
            )
        ]
    return []
