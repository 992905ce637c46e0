"""Celery tasks of the post-mortems app: thin adapters over ``postmortems.notify``.

Delivery is at least once (acks late): a worker killed after sending but
before acknowledging sends the notice again. A duplicate "published" message
is harmless; a lost one is not.
"""

from __future__ import annotations

from celery import shared_task

from postmortems import notify


@shared_task(
    acks_late=True,
    autoretry_for=(notify.NotifyFailed,),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def notify_postmortem_published(post_mortem_id: int) -> bool:
    """Announce a published post-mortem at ``POSTMORTEM_NOTIFY_URL``."""
    return notify.notify_published(post_mortem_id)
