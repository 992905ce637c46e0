from __future__ import annotations

from django.urls import path

from accounts import oidc_views, views

urlpatterns = [
    path("account/settings", views.account_settings, name="account-settings"),
    path("account/settings/browser-time-zone", views.browser_time_zone, name="browser-time-zone"),
    path("account/tokens", views.tokens, name="tokens"),
    path("account/tokens/<int:pk>/revoke", views.revoke_token, name="token-revoke"),
    # mozilla-django-oidc reverses these names.
    path("oidc/authenticate/", oidc_views.SignIn.as_view(), name="oidc_authentication_init"),
    path("oidc/callback/", oidc_views.Callback.as_view(), name="oidc_authentication_callback"),
]
