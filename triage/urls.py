from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from triage import auth, health, metrics

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    # The admin's own login form would bypass the login rate limit.
    path("admin/login/", auth.AdminLoginView.as_view()),
    path("admin/", admin.site.urls),
    path("login", auth.LoginView.as_view(), name="login"),
    path("logout", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("postmortems.urls")),
    path("", include("integrations.urls")),
    path("", include("chat.urls")),
    path("", include("paging.urls")),
    path("", include("insights.urls")),
    path("", include("incidents.urls")),
    path("", include("accounts.urls")),
]

handler400 = "triage.errors.bad_request"
handler500 = "triage.errors.server_error"
