from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from integrations import ingest_views, mcp_http, views
from integrations.api import api

urlpatterns: list[URLPattern | URLResolver] = [
    path("integrations", views.integrations, name="integrations"),
    path("integrations/<int:pk>/rotate", views.rotate, name="integration-rotate"),
    path("integrations/<int:pk>/revoke", views.revoke, name="integration-revoke"),
    path(
        "integrations/alertmanager",
        ingest_views.alertmanager,
        name="integrations-alertmanager",
    ),
    path(
        "integrations/alertmanager/<str:key>",
        ingest_views.alertmanager,
        name="integrations-alertmanager-key",
    ),
    path("integrations/grafana", ingest_views.grafana, name="integrations-grafana"),
    path("integrations/grafana/<str:key>", ingest_views.grafana, name="integrations-grafana-key"),
    path("integrations/v2/enqueue", ingest_views.enqueue, name="integrations-enqueue"),
    path(
        "integrations/v2/change/enqueue",
        ingest_views.change_enqueue,
        name="integrations-change-enqueue",
    ),
    # PagerDuty's own paths, so senders that only let you change the host work too.
    path("v2/enqueue", ingest_views.enqueue, name="integrations-enqueue-pd"),
    path("v2/change/enqueue", ingest_views.change_enqueue, name="integrations-change-enqueue-pd"),
    path("integrations/heartbeat/<str:key>", ingest_views.heartbeat, name="integrations-heartbeat"),
    path("v1/", api.urls),
    path("mcp", mcp_http.endpoint, name="mcp"),
]
