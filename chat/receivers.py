"""Hearing about incident changes (``incidents.signals``) and queueing the
message updates. Runs after the change committed, in whatever process made
it, so it only queues."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from chat import services, tasks
from incidents.signals import incident_changed


@receiver(incident_changed, dispatch_uid="chat.queue_message_updates")
def queue_message_updates(*, incident_id: int, **_: Any) -> None:
    if not services.any_enabled():
        return  # chat is off: not even a query
    for channel_id in services.channels_for(incident_id):
        tasks.sync_message.delay(incident_id, channel_id)
