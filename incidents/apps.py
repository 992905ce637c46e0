from __future__ import annotations

from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_delete, post_save

        from incidents.models import Incident, Service

        # Writes the dashboard shows that record no timeline event: the
        # escalation engine's deadlines and holds (Incident), a renamed
        # service or person (names in every row).
        for model in (Incident, Service, get_user_model()):
            post_save.connect(_changed, sender=model, dispatch_uid=f"readmodel-save-{model}")
            post_delete.connect(_changed, sender=model, dispatch_uid=f"readmodel-del-{model}")


def _changed(**_: object) -> None:
    from triage import readmodel

    readmodel.bump_after_commit()
