"""The URL conf of machine paths (``triage.lean``): the Events API v2 routes
first, then every route of ``triage.urls``.

Django tries routes in order, and an Events API v2 request walked about
thirty patterns (the post-mortem and integration pages come first) before
its own, about a tenth of a repeat's Python: here it matches at the first
or second. Everything else resolves and reverses as through ``triage.urls``,
which this includes whole (same names, same error handlers).
"""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

from integrations import ingest_views

urlpatterns: list[URLPattern | URLResolver] = [
    path("v2/enqueue", ingest_views.enqueue, name="integrations-enqueue-pd"),
    path("integrations/v2/enqueue", ingest_views.enqueue, name="integrations-enqueue"),
    path("", include("triage.urls")),
]

handler400 = "triage.errors.bad_request"
handler500 = "triage.errors.server_error"
