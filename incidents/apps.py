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
        post_save.connect(_changed, sender=Incident, dispatch_uid=f"readmodel-save-{Incident}")
        post_delete.connect(_changed, sender=Incident, dispatch_uid=f"readmodel-del-{Incident}")
        # Names are settings too (triage.readmodel.settings_cached): the
        # service filter and the people of the next escalation level.
        for model in (Service, get_user_model()):
            post_save.connect(_renamed, sender=model, dispatch_uid=f"readmodel-save-{model}")
            post_delete.connect(_renamed, sender=model, dispatch_uid=f"readmodel-del-{model}")


def _changed(**_: object) -> None:
    from triage import readmodel

    readmodel.bump_after_commit()


def _renamed(**_: object) -> None:
    from triage import readmodel

    readmodel.bump_settings_after_commit()
