"""Logging in, with a brake on password guessing that cannot lock a person out.

The brake follows OWASP's device cookies ("Slow Down Online Guessing Attacks
with Device Cookies"). A browser that has logged in as someone gets a signed
device cookie naming that person. An attempt for that same person from that
browser is *trusted*: it is counted only against the device's own budget,
``LOGIN_DEVICE_LIMIT`` failures per ``LOGIN_RATE_WINDOW``, after which that
device is refused until the window ends. Every other attempt is *untrusted*
and counted per client address and per username, ``LOGIN_RATE_LIMIT`` each per
``LOGIN_RATE_WINDOW``. So someone flooding ``bob`` with guesses throttles
every untrusted attempt for bob — bob's own included if he tries from a new
browser, the price of the brake — but not bob at the browser he always uses.

Over a limit the form answers 429 with ``Retry-After`` and checks no password.
A successful login gives its counts back: only failures spend a budget.

Signing in with an OpenID Connect provider (accounts.oidc) is not braked
here: no password is checked, and the provider guards its own login form.
With ``OIDC_PASSWORD_LOGIN`` off, /login shows only the provider's button and
the admin's login page keeps the form for superusers (``LoginForm``).
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import User
from django.core import signing
from django.core.exceptions import ValidationError
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

from triage import ratelimit

DEVICE_COOKIE = "triage_device"
_DEVICE_SALT = "triage.auth.device"


def login_name(form: Form) -> str | None:
    """The username the form's attempt would authenticate as, or None when
    the form would refuse it before any password is checked (empty, too long,
    a NUL character).

    This is the login form's own username field at work (strip, then NFKC,
    as Django's UsernameField does) and then ``normalize_username`` (NFKC
    again, as the user model stores names), so ``bob`` written in fullwidth,
    mathematical bold or circled letters comes out as ``bob``: exactly the
    string ModelBackend then looks up.
    """
    field = form.fields["username"]
    raw = field.widget.value_from_datadict(form.data, form.files, form.add_prefix("username"))
    try:
        cleaned = field.clean(raw)
    except ValidationError:
        return None
    return str(get_user_model().normalize_username(cleaned))


def brake_key(name: str) -> str:
    """The per-username counter's key for an attempt at ``name`` (from
    ``login_name``).

    ModelBackend finds the user with ``get_by_natural_key``, an exact,
    case-sensitive match in PostgreSQL, so the strings that log in as bob are
    exactly those whose ``login_name`` is ``bob``, and keying on ``login_name``
    alone would already give them all one counter. The key is casefolded on
    top: ``BOB`` cannot log in as bob, but guesses at it share bob's counter
    all the same, so the brake stays whole should lookups ever ignore case (a
    case-insensitive collation or backend), at the cost of ``Bob`` and ``bob``
    sharing a budget if both accounts exist.
    """
    return name.casefold()


def trusted_device(request: HttpRequest, name: str | None) -> str | None:
    """The nonce of the request's device cookie when it is valid (signed by
    us, not older than ``DEVICE_COOKIE_AGE``) and was given for ``name``;
    otherwise None: the attempt is untrusted."""
    value = request.COOKIES.get(DEVICE_COOKIE)
    if not value or name is None:
        return None
    try:
        device = signing.loads(value, salt=_DEVICE_SALT, max_age=settings.DEVICE_COOKIE_AGE)
    except signing.BadSignature:  # tampered, forged or expired
        return None
    if not isinstance(device, dict) or device.get("user") != name:
        return None
    nonce = device.get("nonce")
    return nonce if isinstance(nonce, str) else None


def give_device_cookie(response: HttpResponse, user: AbstractBaseUser) -> None:
    """A fresh device cookie for the browser that just logged in as ``user``
    (a new nonce each time, which also starts the device's budget afresh)."""
    value = signing.dumps(
        {"user": user.get_username(), "nonce": secrets.token_urlsafe(16)}, salt=_DEVICE_SALT
    )
    response.set_cookie(
        DEVICE_COOKIE,
        value,
        max_age=settings.DEVICE_COOKIE_AGE,
        path="/",
        secure=settings.SECURE_COOKIES,
        httponly=True,
        samesite="Lax",
    )


def count_attempt(request: HttpRequest, name: str | None) -> list[ratelimit.Verdict]:
    """Count one login attempt where it belongs (see the module docstring)."""
    window = settings.LOGIN_RATE_WINDOW
    nonce = trusted_device(request, name)
    if nonce is not None:
        return [
            ratelimit.hit("login-device", nonce, limit=settings.LOGIN_DEVICE_LIMIT, window=window)
        ]
    limits = {"limit": settings.LOGIN_RATE_LIMIT, "window": window}
    verdicts = [ratelimit.hit("login-address", ratelimit.client_ip(request), **limits)]
    if name is not None:
        verdicts.append(ratelimit.hit("login-user", brake_key(name), **limits))
    return verdicts


class LoginForm(AuthenticationForm):
    """Django's login form; with ``OIDC_PASSWORD_LOGIN`` off it lets only
    superusers in (the break-glass way in while the identity provider is
    down). /login and /admin/login/ both use it, and no other page takes a
    password. Refused only after the password was checked, and said in the
    same words whatever the password was (``LoginView.form_invalid``), so a
    refusal tells a guesser nothing."""

    def confirm_login_allowed(self, user: User) -> None:
        super().confirm_login_allowed(user)
        if not settings.OIDC_PASSWORD_LOGIN and not user.is_superuser:
            raise ValidationError("Password login is turned off.", code="password_login_off")


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    redirect_authenticated_user = True
    # Show the password form although OIDC_PASSWORD_LOGIN is off (superusers).
    break_glass = False
    counted: list[ratelimit.Verdict]  # this attempt's counts, given back on success

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        form = self.get_form()
        # Counted before the password is checked, and given back after a
        # success: concurrent guesses each take a slot first, so no more than
        # the limit can ever be checked in a window.
        self.counted = count_attempt(request, login_name(form))
        refused = [verdict for verdict in self.counted if not verdict.allowed]
        if not refused:
            return super().post(request, *args, **kwargs)
        wait = max(verdict.retry_after for verdict in refused)
        form.errors.clear()
        form.add_error(
            None,
            f"Too many login attempts. Try again in {max(1, round(wait / 60))} minute(s).",
        )
        response = self.render_to_response(self.get_context_data(form=form), status=429)
        response["Retry-After"] = str(wait)
        return response

    def form_invalid(self, form: Any) -> HttpResponse:
        if not settings.OIDC_PASSWORD_LOGIN:
            # Said whatever the password was: it tells a guesser nothing.
            form.errors.clear()
            form.add_error(
                None,
                "Password login is turned off (superusers excepted): "
                f"sign in with {settings.OIDC_PROVIDER_NAME}.",
            )
        return super().form_invalid(form)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["oidc_provider"] = settings.OIDC_PROVIDER_NAME if settings.OIDC_ISSUER else ""
        context["password_form"] = settings.OIDC_PASSWORD_LOGIN or self.break_glass
        return context

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        for verdict in self.counted:
            ratelimit.refund(verdict)
        give_device_cookie(response, form.get_user())
        return response


class AdminLoginView(LoginView):
    """The admin's login page (the same form, rate limit included).

    Staff already logged in go on to the admin. Anyone else logged in is told
    why the admin is closed to them: redirecting them on would send them back
    to /admin/, which sends them here again, endlessly.
    """

    break_glass = True

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        self.redirect_authenticated_user = bool(request.user.is_staff)
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        user = self.request.user
        context["not_staff"] = user.get_username() if user.is_authenticated else ""
        return context
