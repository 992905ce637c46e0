"""API tokens: personal credentials for API clients (see accounts.tokens)."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q


class TokenScope(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Read and write"


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 is stored; the token is shown once.

    Tokens are 256-bit random strings, so a fast hash is enough: there is no
    password to brute-force, and lookups by hash stay one index probe.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=5, choices=TokenScope.choices, default=TokenScope.READ)
    # The first characters, shown in lists so people can tell tokens apart.
    prefix = models.CharField(max_length=12)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # The table was created by the incidents app and keeps its name, so
        # moving the model here changed no data and no running query (see
        # accounts/migrations/0001).
        db_table = "incidents_apitoken"
        ordering: ClassVar = ["-created_at"]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(scope__in=TokenScope.values), name="api_token_scope_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: str) -> bool:
        return self.scope == TokenScope.WRITE or scope == TokenScope.READ


class OidcIdentity(models.Model):
    """A person's account at an OpenID Connect provider, linked to their user.

    Sign-ins find the user by (issuer, subject), the one pair the provider
    promises never to reuse; e-mail addresses and usernames can change hands.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oidc_identities"
    )
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "OpenID Connect identity"
        verbose_name_plural = "OpenID Connect identities"
        constraints: ClassVar = [
            # Two first sign-ins at once cannot both link the same subject.
            models.UniqueConstraint(fields=["issuer", "subject"], name="oidc_identity_unique")
        ]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"


class Profile(models.Model):
    """A person's own preferences; no row (or an empty field) means the defaults.

    Created on first need (``accounts.timezones``): people who never choose
    anything cost no row.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    # An IANA name such as Europe/Berlin, checked against zoneinfo when set;
    # empty until the person or their browser chose one (then TIME_ZONE).
    time_zone = models.CharField(max_length=64, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.user} ({self.time_zone or 'server time zone'})"
