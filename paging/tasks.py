"""Celery tasks: thin adapters over paging.escalation and paging.notify."""

from __future__ import annotations

import logging
import urllib.request
from typing import Any

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from paging import escalation, notify, state
from triage import outbound

logger = logging.getLogger(__name__)


@shared_task(name="paging.check_escalations", ignore_result=True)
def check_escalations() -> dict[str, Any]:
    result = escalation.check()
    if result["claimed"]:
        # Only passes that did something are logged (a pass a second that
        # finds nothing due would drown every other line); the heartbeat
        # shows the loop is alive.
        logger.info("escalation pass", extra={"outcomes": result})
    if settings.ESCALATION_HEARTBEAT_URL and state.once_per("heartbeat-ping", 60):
        ping_heartbeat.delay()
    return result


@shared_task(name="paging.ping_heartbeat", ignore_result=True)
def ping_heartbeat() -> int:
    """Tell an external dead-man's switch that escalation passes are running."""
    url = settings.ESCALATION_HEARTBEAT_URL
    if not url.startswith(("http://", "https://")):
        logger.warning("ESCALATION_HEARTBEAT_URL must be an http(s) URL; not pinging")
        return 0
    # The scheme is checked just above: no file:// or custom schemes. The
    # guard checks the host, and every redirect urllib follows, at connect time.
    with outbound.guarded() as attempt:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  # nosec B310
                return int(response.status)
        except OSError:
            if not attempt.refused:
                raise  # a failure of an allowed host: Celery logs it
    logger.warning(
        "ESCALATION_HEARTBEAT_URL is refused by triage's outbound policy; not pinging "
        "(allow its host with OUTBOUND_ALLOW or an outbound allow rule in the admin)"
    )
    return 0


@shared_task(name="paging.escalate_due", ignore_result=True)
def escalate_due(incident_id: int) -> str:
    return escalation.escalate_due(incident_id)


@shared_task(name="paging.escalate_chunk", ignore_result=True)
def escalate_chunk(incident_ids: list[int]) -> dict[str, int]:
    return escalation.escalate_many(incident_ids)


@shared_task(name="paging.queue_deliveries", ignore_result=True)
def queue_deliveries(page_ids: list[int]) -> int:
    return escalation.queue_deliveries(page_ids)


@shared_task(name="paging.reconcile", ignore_result=True)
def reconcile() -> dict[str, int]:
    result = {**escalation.reconcile(), "pages_resent": notify.resend_stuck()}
    if result["started"] or result["pages_resent"]:
        # Like the escalation pass: a line only when it repaired something
        # (rewriting the deadline index every minute is routine).
        logger.info("reconciliation", extra={"outcomes": result})
    return result


@shared_task(name="paging.deliver_page", ignore_result=True)
def deliver_page(page_id: int) -> str:
    return notify.deliver(page_id)


@shared_task(name="paging.send_test_notification", ignore_result=True)
def send_test_notification(method_id: int) -> str:
    return notify.send_test(method_id)


@shared_task(name="paging.tell_about_cover", ignore_result=True)
def tell_about_cover(cover_id: int) -> int:
    return notify.tell_about_cover(cover_id)


@worker_ready.connect
def _rebuild_on_start(**_: Any) -> None:
    # Redis may have been flushed while no worker ran: rebuild before work.
    reconcile.delay()
