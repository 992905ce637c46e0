from __future__ import annotations

from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from incidents.models import Service
        from integrations import tasks  # noqa: F401  (registers the tasks)
        from integrations.models import Integration

        # What the Events API v2 key cache holds (integrations.keys.admit):
        # an integration and its service, retired after any change to either.
        for model in (Integration, Service):
            post_save.connect(_keys_changed, sender=model, dispatch_uid=f"keys-save-{model}")
            post_delete.connect(_keys_changed, sender=model, dispatch_uid=f"keys-del-{model}")


def _keys_changed(update_fields: frozenset[str] | None = None, **_: object) -> None:
    from integrations import keys

    # A heartbeat's ping saves only fields a cached entry leaves out.
    if update_fields and update_fields <= keys.VOLATILE:
        return
    keys.bump_after_commit()
