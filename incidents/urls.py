from __future__ import annotations

from django.urls import path, re_path

from incidents import status_views, storm_views, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("incidents", views.incident_create, name="incident-create"),
    path("incidents/new", views.incident_new, name="incident-new"),
    path("incidents/<int:pk>", views.incident_detail, name="incident-detail"),
    re_path(
        r"^incidents/(?P<pk>[0-9]+)/(?P<action>acknowledge|resolve|reopen|escalate|notes)$",
        views.incident_action,
        name="incident-action",
    ),
    path(
        "incidents/<int:pk>/public-title",
        status_views.public_title,
        name="incident-public-title",
    ),
    path(
        "incidents/<int:pk>/storm-alerts/<int:item_id>/split",
        storm_views.split_out,
        name="storm-alert-split",
    ),
]
