"""Signing in with an OpenID Connect provider (Keycloak, Authentik, Google…).

mozilla-django-oidc runs the authorization code flow: state and nonce kept in
the session, PKCE, the code exchanged at the token endpoint with the client
secret, and the ID token's signature checked against the keys the provider
publishes (its JWKS, fetched at each sign-in, so rotated keys just work).
triage adds what the library leaves to the site using it:

- the provider's endpoints come from its discovery document
  (``<OIDC_ISSUER>/.well-known/openid-configuration``), fetched at the first
  sign-in and kept for an hour — not at start: triage must start, migrate
  and page people while the provider is down;
- the ID token's issuer, audience and expiry are checked (the library checks
  its signature and nonce only), and userinfo must be about the same subject;
- people are found by (issuer, subject), linked to an existing account by a
  *verified* e-mail address the first time, or created; the staff flag follows
  the group claim at every sign-in (``sign_in``).

The calls to the provider do not go through triage.outbound's policy. That
policy keeps people from pointing triage at addresses of their choosing; the
provider is chosen by the operator in the environment, as OUTBOUND_ALLOW is,
and is trusted with far more than a connection: it decides who logs in and
who is staff. Identity providers usually sit on the private network
(a Keycloak in the cluster), which the policy would refuse.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
import requests
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import SuspiciousOperation
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from accounts.models import OidcIdentity

logger = logging.getLogger(__name__)

# Seconds to wait for the provider on each call (the library waits forever by default).
TIMEOUT = 10
DISCOVERY_TTL = 3600.0
SIGN_ALGORITHM = "RS256"  # what Keycloak, Authentik (with a signing key) and Google use


class ProviderUnavailable(Exception):
    """The discovery document could not be fetched or does not describe OIDC_ISSUER."""


@dataclass(frozen=True)
class Provider:
    issuer: str  # as the provider spells it: ID tokens must carry exactly this
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str
    basic_auth: bool  # client_secret_basic, else client_secret_post


def enabled() -> bool:
    return bool(settings.OIDC_ISSUER)


_discovered: dict[str, tuple[float, Provider]] = {}


def provider(*, now: float | None = None) -> Provider:
    """The configured provider's endpoints, discovered at most once an hour
    per process. Two threads that find the cache stale both fetch and store
    equal documents: a plain dict assignment, the last one wins."""
    issuer = settings.OIDC_ISSUER
    now = time.monotonic() if now is None else now
    cached = _discovered.get(issuer)
    if cached is not None and now - cached[0] < DISCOVERY_TTL:
        return cached[1]
    found = discover(issuer)
    _discovered[issuer] = (now, found)
    return found


def discover(issuer: str) -> Provider:
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        logger.warning("oidc discovery failed", extra={"url": url, "error": str(exc)[:200]})
        raise ProviderUnavailable(f"could not read {url}") from exc
    if not isinstance(document, dict):
        raise ProviderUnavailable(f"{url} is not a discovery document")
    # OpenID Connect Discovery 1.0, 4.3: the document must be about the
    # issuer it was fetched for. A trailing slash is forgiven: operators
    # write Authentik's issuer (which has one) either way.
    named = document.get("issuer")
    if not isinstance(named, str) or named.rstrip("/") != issuer.rstrip("/"):
        logger.warning("oidc discovery names another issuer", extra={"issuer": str(named)[:200]})
        raise ProviderUnavailable(f"{url} describes another issuer")
    keys = ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri")
    endpoints = {key: document.get(key) for key in keys}
    missing = [
        key
        for key, value in endpoints.items()
        if not (isinstance(value, str) and value.startswith(("https://", "http://")))
    ]
    if missing:
        logger.warning("oidc discovery lacks endpoints", extra={"missing": missing})
        raise ProviderUnavailable(f"{url} lacks {', '.join(missing)}")
    # The specification's default when the provider does not say.
    methods = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    return Provider(
        issuer=named,
        basic_auth=isinstance(methods, list) and "client_secret_basic" in methods,
        **{key: str(value) for key, value in endpoints.items()},
    )


def forget_provider() -> None:
    """Drop the discovered endpoints (tests; a provider that moved is
    rediscovered within the hour anyway)."""
    _discovered.clear()


def oidc_setting(name: str, *default: Any) -> Any:
    """What mozilla-django-oidc reads as settings, made from triage's own
    OIDC_* settings and the discovery document."""
    derived: dict[str, Callable[[], Any]] = {
        "OIDC_OP_AUTHORIZATION_ENDPOINT": lambda: provider().authorization_endpoint,
        "OIDC_OP_TOKEN_ENDPOINT": lambda: provider().token_endpoint,
        "OIDC_OP_USER_ENDPOINT": lambda: provider().userinfo_endpoint,
        "OIDC_OP_JWKS_ENDPOINT": lambda: provider().jwks_uri,
        "OIDC_TOKEN_USE_BASIC_AUTH": lambda: provider().basic_auth,
        "OIDC_RP_CLIENT_ID": lambda: settings.OIDC_CLIENT_ID,
        "OIDC_RP_CLIENT_SECRET": lambda: settings.OIDC_CLIENT_SECRET,
        "OIDC_RP_SCOPES": lambda: settings.OIDC_SCOPES,
        "OIDC_RP_SIGN_ALGO": lambda: SIGN_ALGORITHM,
        "OIDC_USE_PKCE": lambda: True,
        "OIDC_TIMEOUT": lambda: TIMEOUT,
        "LOGIN_REDIRECT_URL_FAILURE": lambda: reverse("login"),
    }
    if name in derived:
        return derived[name]()
    return getattr(settings, name, *default)


class OidcBackend(OIDCAuthenticationBackend):  # type: ignore[misc]  # the library is untyped
    """``AUTHENTICATION_BACKENDS`` entry for the sign-in callback."""

    get_settings = staticmethod(oidc_setting)
    OIDC_RP_SIGN_ALGO = SIGN_ALGORITHM
    OIDC_RP_IDP_SIGN_KEY = None  # the key comes from the provider's JWKS

    def __init__(self) -> None:
        # The library reads its settings, endpoints included, here. Django
        # builds a backend for every password login and every request's user,
        # so nothing here may reach the provider: the endpoints are properties.
        self.UserModel = User

    # The library's attribute names, as properties.
    @property
    def OIDC_OP_TOKEN_ENDPOINT(self) -> str:
        return provider().token_endpoint

    @property
    def OIDC_OP_USER_ENDPOINT(self) -> str:
        return provider().userinfo_endpoint

    @property
    def OIDC_OP_JWKS_ENDPOINT(self) -> str:
        return provider().jwks_uri

    @property
    def OIDC_RP_CLIENT_ID(self) -> str:
        return str(settings.OIDC_CLIENT_ID)

    @property
    def OIDC_RP_CLIENT_SECRET(self) -> str:
        return str(settings.OIDC_CLIENT_SECRET)

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> User | None:
        # Django asks every backend at a password login too; only the
        # callback passes a nonce.
        if request is None or "nonce" not in kwargs or not enabled():
            return None
        try:
            user: User | None = super().authenticate(request, **kwargs)
        except (
            ProviderUnavailable,
            requests.RequestException,
            jwt.InvalidTokenError,
            SuspiciousOperation,
            # The provider's answers are JSON of any shape (a JWKS without
            # "keys", a key without "kid"): refuse the sign-in, not a 500.
            KeyError,
            TypeError,
            ValueError,
        ) as exc:
            logger.warning(
                "oidc sign-in refused",
                extra={"reason": f"{type(exc).__name__}: {str(exc)[:200]}"},
            )
            return None
        return user

    def get_user(self, user_id: Any) -> User | None:
        # Turning OIDC off ends the sessions it started.
        if not enabled():
            return None
        user: User | None = super().get_user(user_id)
        return user if user is not None and self.user_can_authenticate(user) else None

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        payload: dict[str, Any] = super().verify_token(token, **kwargs)
        if "nonce" in kwargs:  # the ID token (a signed userinfo answer has no nonce)
            check_id_token(payload, issuer=provider().issuer, client_id=settings.OIDC_CLIENT_ID)
        return payload

    def get_userinfo(
        self, access_token: str, id_token: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        userinfo = super().get_userinfo(access_token, id_token, payload)
        # OpenID Connect Core 1.0, 5.3.2: userinfo about another subject is
        # not to be used.
        if not isinstance(userinfo, dict) or userinfo.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("userinfo is about another subject")
        return {**payload, **userinfo}

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        return isinstance(claims.get("sub"), str) and bool(claims["sub"])

    def get_or_create_user(
        self, access_token: str, id_token: str, payload: dict[str, Any]
    ) -> User | None:
        claims = self.get_userinfo(access_token, id_token, payload)
        if not self.verify_claims(claims):
            raise SuspiciousOperation("no subject in the claims")
        return sign_in(claims, issuer=provider().issuer)


def check_id_token(payload: Mapping[str, Any], *, issuer: str, client_id: str) -> None:
    """OpenID Connect Core 1.0, 3.1.3.7: the token is from our provider, for
    us, and not expired (PyJWT refused an expired ``exp`` already; here it
    must also be present)."""
    if payload.get("iss") != issuer:
        raise SuspiciousOperation("the ID token is from another issuer")
    audience = payload.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or client_id not in audiences:
        raise SuspiciousOperation("the ID token is for another client")
    if len(audiences) > 1 and payload.get("azp") != client_id:
        raise SuspiciousOperation("the ID token was issued to another client")
    if not isinstance(payload.get("exp"), int | float):
        raise SuspiciousOperation("the ID token never expires")


# --- who signs in ---------------------------------------------------------------

_NOT_IN_USERNAMES = re.compile(r"[^\w.@+-]")


def sign_in(claims: Mapping[str, Any], *, issuer: str, now: datetime | None = None) -> User | None:
    """The user the provider's claims sign in as, found by (issuer, subject);
    the first time linked to the one account with the same verified e-mail,
    or created (username from ``preferred_username``, no password). Names,
    a verified e-mail and, with OIDC_STAFF_GROUP, the staff flag are updated
    from the claims. None: refused (an inactive account, an e-mail several
    accounts share, or one already linked to another subject here).

    Two first sign-ins at once (a double click, two tabs) race to insert the
    same identity or the same username; the unique constraints let one win
    and the loser's second pass finds what the winner wrote.
    """
    subject = str(claims["sub"])
    now = now or timezone.now()
    for attempt in range(2):
        try:
            with transaction.atomic():
                return _sign_in(claims, issuer, subject, now)
        except IntegrityError:
            if attempt:
                raise
    return None  # pragma: no cover - the loop returns or raises


def _sign_in(claims: Mapping[str, Any], issuer: str, subject: str, now: datetime) -> User | None:
    identity = (
        OidcIdentity.objects.select_related("user")
        .select_for_update()
        .filter(issuer=issuer, subject=subject)
        .first()
    )
    if identity is None:
        try:
            user = _account_to_link(claims, issuer) or _new_user(claims)
        except _NotLinked:
            return None
        identity = OidcIdentity.objects.create(user=user, issuer=issuer, subject=subject)
    user = identity.user
    if not user.is_active:
        logger.info("oidc sign-in refused: inactive account", extra={"user": user.pk})
        return None
    _update_user(user, claims)
    identity.last_login_at = now
    identity.save(update_fields=["last_login_at"])
    return user


def _verified_email(claims: Mapping[str, Any]) -> str:
    email = claims.get("email")
    verified = claims.get("email_verified")
    # Some providers (Cognito) send the flag as a string.
    if verified is True or (isinstance(verified, str) and verified.lower() == "true"):
        return email if isinstance(email, str) and 0 < len(email) <= 254 else ""
    return ""


class _NotLinked(Exception):
    """Linking by e-mail would be a guess."""


def _account_to_link(claims: Mapping[str, Any], issuer: str) -> User | None:
    """The existing account with the claims' verified e-mail; None when there
    is none. Raises _NotLinked when linking would be a guess (see ``sign_in``)."""
    email = _verified_email(claims)
    if not email:
        return None
    users = list(User.objects.filter(email__iexact=email)[:2])
    if not users:
        return None
    if len(users) > 1:
        logger.warning("oidc sign-in refused: several accounts have this e-mail")
        raise _NotLinked
    if OidcIdentity.objects.filter(user=users[0], issuer=issuer).exists():
        # The account has its own identity here: another subject with the
        # same address is someone (or something) staff must look at first.
        logger.warning("oidc sign-in refused: the account is linked to another subject")
        raise _NotLinked
    return users[0]


def _new_user(claims: Mapping[str, Any]) -> User:
    wanted = claims.get("preferred_username")
    if not isinstance(wanted, str) or not _NOT_IN_USERNAMES.sub("", wanted):
        email = claims.get("email")
        wanted = email.split("@")[0] if isinstance(email, str) else ""
    base = _NOT_IN_USERNAMES.sub("", wanted)[:140] or "user"
    username, number = base, 1
    # A taken name is someone else's account: never sign in as it by name.
    while User.objects.filter(username=username).exists():
        number += 1
        username = f"{base}-{number}"
    return User.objects.create_user(username, email=_verified_email(claims))


def _groups(claims: Mapping[str, Any]) -> list[str]:
    name = settings.OIDC_GROUPS_CLAIM
    value: Any = claims.get(name)
    if value is None and "." in name:  # a nested claim such as realm_access.roles
        value = claims
        for part in name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _update_user(user: User, claims: Mapping[str, Any]) -> None:
    wanted: dict[str, Any] = {}
    for field, claim in (("first_name", "given_name"), ("last_name", "family_name")):
        value = claims.get(claim)
        if isinstance(value, str):
            wanted[field] = value[:150]
    email = _verified_email(claims)
    if email:
        wanted["email"] = email
    # Superusers are the break-glass accounts, kept in the admin: a group
    # claim never takes the admin away from them.
    if settings.OIDC_STAFF_GROUP and not user.is_superuser:
        wanted["is_staff"] = settings.OIDC_STAFF_GROUP in _groups(claims)
    changed = [field for field, value in wanted.items() if getattr(user, field) != value]
    for field in changed:
        setattr(user, field, wanted[field])
    if changed:
        user.save(update_fields=changed)
