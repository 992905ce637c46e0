"""Celery tasks: thin adapters over integrations.services."""

from __future__ import annotations

import logging

from celery import shared_task

from integrations import services

logger = logging.getLogger(__name__)


@shared_task(name="integrations.check_heartbeats", ignore_result=True)
def check_heartbeats() -> int:
    """Open an incident for every heartbeat past its deadline (safe to overlap)."""
    opened = services.open_overdue_heartbeats()
    if opened:  # every 10 s: a line only when a heartbeat was missed
        logger.info("heartbeats overdue", extra={"opened": opened})
    return opened
