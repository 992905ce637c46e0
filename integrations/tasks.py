"""Celery tasks: thin adapters over integrations.services."""

from __future__ import annotations

from celery import shared_task

from integrations import services


@shared_task(name="integrations.check_heartbeats", ignore_result=True)
def check_heartbeats() -> int:
    """Open an incident for every heartbeat past its deadline (safe to overlap)."""
    return services.open_overdue_heartbeats()
