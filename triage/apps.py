from __future__ import annotations

from django.apps import AppConfig


class TriageConfig(AppConfig):
    name = "triage"
    verbose_name = "triage"

    def ready(self) -> None:
        from triage import (
            checks,  # noqa: F401  (registers the system checks)
            outbound,  # installs the connection guard in every process
        )

        outbound.check_settings()
