"""A URL configuration with a keyed route triage does not have, for test_logs."""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import path


def _view(request: object, pk: int, key: str = "") -> HttpResponse:
    return HttpResponse()


urlpatterns = [
    path("hooks/<int:pk>/deliver/<str:key>", _view),
    path("hooks/<int:pk>/other/<str:name>", _view),
]
