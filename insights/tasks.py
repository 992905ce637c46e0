"""Celery tasks: thin adapters over insights.rollups."""

from __future__ import annotations

import logging

from celery import shared_task

from insights import rollups

logger = logging.getLogger(__name__)


@shared_task(name="insights.refresh", ignore_result=True)
def refresh() -> dict[str, int]:
    """Roll up closed days (new or changed ones) and warm the overall
    figures' cache entries (safe to overlap: see insights.rollups)."""
    done = rollups.refresh()
    if done["rolled"] or done["forgotten"]:
        logger.info("insights rolled up", extra=done)
    return done
