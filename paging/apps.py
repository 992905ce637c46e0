from __future__ import annotations

from django.apps import AppConfig


class PagingConfig(AppConfig):
    name = "paging"

    def ready(self) -> None:
        from incidents import hooks
        from paging import freshness, metrics, tasks  # noqa: F401  (registers the tasks)
        from paging.hooks import PagingLifecycle, PagingPages
        from triage.health import READINESS_REPORTS
        from triage.metrics import SCRAPE_COLLECTORS

        # incidents calls these inside its transactions and pages without
        # importing paging (tests/test_boundaries.py holds it to that).
        hooks.register(PagingLifecycle())
        hooks.register(PagingPages())
        SCRAPE_COLLECTORS.append(metrics.collect)
        READINESS_REPORTS["escalation"] = metrics.escalation_heartbeat
        freshness.connect()
