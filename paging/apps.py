from __future__ import annotations

from django.apps import AppConfig


class PagingConfig(AppConfig):
    name = "paging"

    def ready(self) -> None:
        from paging import freshness, metrics, tasks  # noqa: F401  (registers the tasks)
        from triage.metrics import SCRAPE_COLLECTORS

        SCRAPE_COLLECTORS.append(metrics.collect)
        freshness.connect()
