"""The two steps of signing in with the OpenID Connect provider (accounts.oidc):
off to the provider, and back with a code. Both are 404 while OIDC is off."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.generic import View
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
)

from accounts.oidc import ProviderUnavailable, enabled, oidc_setting, provider


class SignIn(OIDCAuthenticationRequestView):  # type: ignore[misc]  # the library is untyped
    """GET /oidc/authenticate/?next=…: to the provider's sign-in page."""

    get_settings = staticmethod(oidc_setting)

    def __init__(self, **kwargs: Any) -> None:
        # The library reads the endpoint here, where a failure would be a 500.
        View.__init__(self, **kwargs)

    def get(self, request: HttpRequest) -> HttpResponse:
        if not enabled():
            raise Http404
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider().authorization_endpoint
        except ProviderUnavailable:
            messages.error(
                request,
                f"{settings.OIDC_PROVIDER_NAME} cannot be reached just now. Try again in a minute.",
            )
            return redirect("login")
        self.OIDC_RP_CLIENT_ID = settings.OIDC_CLIENT_ID
        response: HttpResponse = super().get(request)
        return response


class Callback(OIDCAuthenticationCallbackView):  # type: ignore[misc]
    """GET /oidc/callback/?code=…&state=…: the provider sends the browser back here."""

    get_settings = staticmethod(oidc_setting)

    def get(self, request: HttpRequest) -> HttpResponse:
        if not enabled():
            raise Http404
        try:
            response: HttpResponse = super().get(request)
        except SuspiciousOperation:  # a state this browser never started: replayed or forged
            return self.login_failure()
        return response

    def login_failure(self) -> HttpResponse:
        messages.error(
            self.request,
            f"Signing in with {settings.OIDC_PROVIDER_NAME} did not work. Try again; "
            "if it keeps failing, ask whoever runs triage to look at its log.",
        )
        return redirect("login")
