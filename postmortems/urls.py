from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from postmortems import action_views, public_views, views

urlpatterns: list[URLPattern | URLResolver] = [
    # Public: no login.
    path("report", public_views.report, name="report"),
    path("status", public_views.status_page, name="status"),
    path("postmortems/", public_views.index, name="postmortem-index"),
    # Published post-mortems are public; everything else needs a login.
    path("postmortems/<int:pk>", views.detail, name="postmortem-detail"),
    path("postmortems/<int:pk>.md", views.markdown, name="postmortem-markdown"),
    path("incidents/<int:pk>/postmortem", views.draft, name="postmortem-draft"),
    path("postmortems/<int:pk>/preview", views.preview, name="postmortem-preview"),
    path("postmortems/<int:pk>/todos", views.todos, name="postmortem-todos"),
    path("postmortems/<int:pk>/status", views.change_status, name="postmortem-status"),
    path("postmortems/<int:pk>/followups", views.followups, name="postmortem-followups"),
    path(
        "postmortems/<int:pk>/sections/<slug:name>",
        views.section,
        name="postmortem-section",
    ),
    path("postmortems/<int:pk>/actions", action_views.add, name="postmortem-action-add"),
    path(
        "postmortems/<int:pk>/actions/<int:item_id>",
        action_views.edit,
        name="postmortem-action",
    ),
    path(
        "postmortems/<int:pk>/actions/<int:item_id>/status",
        action_views.change_status,
        name="postmortem-action-status",
    ),
    path(
        "postmortems/<int:pk>/actions/<int:item_id>/done",
        action_views.done,
        name="postmortem-action-done",
    ),
]
