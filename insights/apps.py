from __future__ import annotations

from django.apps import AppConfig


class InsightsConfig(AppConfig):
    """On-call health: read-only figures over incidents (``incidents``) and
    the pages sent for them (``paging``). Above both, below ``integrations``
    (whose /v1 API serves the same figures). Its models are daily roll-ups
    of the figures (insights.models), derived data rolled again at will."""

    name = "insights"
