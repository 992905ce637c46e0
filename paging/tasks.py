"""Celery tasks: thin adapters over paging.escalation and paging.notify."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import worker_ready

from paging import escalation, notify


@shared_task(name="paging.check_escalations", ignore_result=True)
def check_escalations() -> dict[str, Any]:
    return escalation.check()


@shared_task(name="paging.reconcile", ignore_result=True)
def reconcile() -> dict[str, int]:
    return escalation.reconcile()


@shared_task(name="paging.deliver_page", ignore_result=True)
def deliver_page(page_id: int) -> str:
    return notify.deliver(page_id)


@shared_task(name="paging.send_test_notification", ignore_result=True)
def send_test_notification(method_id: int) -> str:
    return notify.send_test(method_id)


@worker_ready.connect
def _rebuild_on_start(**_: Any) -> None:
    # Redis may have been flushed while no worker ran: rebuild before work.
    reconcile.delay()
