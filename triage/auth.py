"""Logging in, with a brake on password guessing.

Each client address may try ``LOGIN_RATE_LIMIT`` times per
``LOGIN_RATE_WINDOW`` seconds, and so may each username (whatever the
address), so neither one machine guessing many accounts nor many machines
guessing one account gets far. Over the limit the form answers 429 with
``Retry-After`` and checks no password at all.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

from triage import ratelimit


class LoginView(auth_views.LoginView):
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username = str(request.POST.get("username", "")).strip().lower()[:150]
        limits = {"limit": settings.LOGIN_RATE_LIMIT, "window": settings.LOGIN_RATE_WINDOW}
        verdicts = [ratelimit.hit("login-address", ratelimit.client_ip(request), **limits)]
        if username:
            verdicts.append(ratelimit.hit("login-user", username, **limits))
        refused = [verdict for verdict in verdicts if not verdict.allowed]
        if not refused:
            return super().post(request, *args, **kwargs)
        wait = max(verdict.retry_after for verdict in refused)
        form = self.get_form()
        form.errors.clear()
        form.add_error(
            None,
            f"Too many login attempts. Try again in {max(1, round(wait / 60))} minute(s).",
        )
        response = self.render_to_response(self.get_context_data(form=form), status=429)
        response["Retry-After"] = str(wait)
        return response


class AdminLoginView(LoginView):
    """The admin's login page (the same form, rate limit included).

    Staff already logged in go on to the admin. Anyone else logged in is told
    why the admin is closed to them: redirecting them on would send them back
    to /admin/, which sends them here again, endlessly.
    """

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        self.redirect_authenticated_user = bool(request.user.is_staff)
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        user = self.request.user
        context["not_staff"] = user.get_username() if user.is_authenticated else ""
        return context
