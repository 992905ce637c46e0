from __future__ import annotations

from django.urls import path

from accounts import views

urlpatterns = [
    path("account/tokens", views.tokens, name="tokens"),
    path("account/tokens/<int:pk>/revoke", views.revoke_token, name="token-revoke"),
]
