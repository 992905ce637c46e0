"""Sending pages through apprise, one Page row per attempt."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import apprise
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from incidents.models import Severity, Status
from paging import escalation, state
from paging.models import ContactMethod, Page, PageStatus
from triage.celery import app as celery_app

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# A queued page whose task has not run this long after it fell due lost its
# task (a flushed broker): reconciliation sends it again.
STUCK_GRACE = timedelta(seconds=30)


def claim_lease() -> timedelta:
    """How long a claim holds. A send cannot outlive the task's hard time limit
    (the worker kills it), so a page claimed longer ago than that belongs to a
    worker that died mid-send and may be claimed again."""
    return timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 5)


def backoff(attempt: int) -> timedelta:
    """30 s, 1 min, 2 min, 4 min: retry quickly, but do not hammer a failing channel."""
    return timedelta(seconds=30 * 2 ** (attempt - 1))


def send(url: str, *, title: str, body: str) -> str:
    """Send one message; "" on success, otherwise what went wrong (no secrets)."""
    sender = apprise.Apprise()
    if not sender.add(url):
        return "not a valid apprise URL"
    with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
        ok = sender.notify(title=title, body=body)
    if ok:
        return ""
    lines = [line for line in captured.getvalue().splitlines() if line.strip()]
    return (lines[-1] if lines else "the channel refused the message")[:500]


# apprise's captured log lines: "2026-11-29 20:17:18,840 - WARNING - message".
_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d[ T][\d:,.]+ - [A-Z]+ - ")
_CONNECTION = re.compile(r"connection error occurred sending .*?(?: to ([^\s]+?))?\.?$", re.I)
_HTTP_STATUS = re.compile(r"error=(\d{3})\b")


def plain_reason(error: str, *, url: str = "") -> str:
    """One plain sentence for a failed send: "could not connect to 127.0.0.1",
    "HTTP 404 from ntfy.example"; never a log prefix. ``error`` is what
    ``send`` returned (apprise's last captured log line, or already plain);
    ``url`` names the host when the line does not."""
    text = _LOG_PREFIX.sub("", error.strip().splitlines()[-1] if error.strip() else "").strip()
    host = urlsplit(url).hostname or "" if "://" in url else ""
    if not text:
        return "the channel refused the message"
    if (found := _CONNECTION.search(text)) is not None:
        where = found.group(1) or host
        if where.startswith(("http:", "https:")):
            where = (
                urlsplit(where.split(":", 1)[1] if where.count(":") > 1 else where).hostname
                or where
            )
        return f"could not connect to {where}" if where else "could not connect"
    if (status := _HTTP_STATUS.search(text)) is not None:
        return f"HTTP {status.group(1)} from {host}" if host else f"HTTP {status.group(1)}"
    if "no service(s) to notify" in text:
        return "not a valid apprise URL"
    return text.rstrip(".")[:300]


def _claim(page_id: int) -> bool:
    """Take the page for sending. Exactly one worker wins a queued page: the
    conditional UPDATE is atomic, and a second worker's update matches no row."""
    now = timezone.now()
    claimable = Q(status=PageStatus.QUEUED) | Q(
        status=PageStatus.SENDING, claimed_at__lt=now - claim_lease()
    )
    return bool(
        Page.objects.filter(claimable, pk=page_id).update(status=PageStatus.SENDING, claimed_at=now)
    )


def deliver(page_id: int) -> str:
    """Send a queued page; on failure record it and queue the next attempt."""
    if not _claim(page_id):
        return "skipped"
    page = Page.objects.select_related("incident__service", "contact_method").get(pk=page_id)
    incident = page.incident
    if incident.status != Status.TRIGGERED or page.contact_method is None:
        Page.objects.filter(pk=page.pk).update(status=PageStatus.CANCELLED)
        return "cancelled"
    severity = Severity(incident.severity).label
    url = page.contact_method.url
    error = send(
        url,
        title=f"[{severity}] #{incident.pk} {incident.title}",
        body=(
            f"{incident.service} · level {page.level}\n"
            f"{settings.BASE_URL}{incident.get_absolute_url()}"
        ),
    )
    now = timezone.now()
    if not error:
        Page.objects.filter(pk=page.pk).update(status=PageStatus.SENT, sent_at=now)
        ContactMethod.objects.filter(pk=page.contact_method.pk).update(reach_verified_at=now)
        state.count("pages", (page.channel, "sent"))
        escalation.page_sent(page, now=now)
        return "sent"
    error = plain_reason(error, url=url)
    page.error = error
    with transaction.atomic():
        Page.objects.filter(pk=page.pk).update(status=PageStatus.FAILED, error=error)
        state.count("pages", (page.channel, "failed"))
        if page.attempt < MAX_ATTEMPTS:
            retry = Page.objects.create(
                incident=incident,
                user=page.user,
                contact_method=page.contact_method,
                channel=page.channel,
                level=page.level,
                step=page.step,
                attempt=page.attempt + 1,
                due_at=now + backoff(page.attempt),
            )
            transaction.on_commit(
                lambda: celery_app.send_task(
                    "paging.deliver_page", args=[retry.pk], eta=retry.due_at
                )
            )
    logger.warning(
        "page failed", extra={"page_id": page.pk, "channel": page.channel, "error": error}
    )
    if page.attempt >= MAX_ATTEMPTS:
        # Its last attempt: whether anyone at its level can still be reached.
        escalation.page_failed(page, now=now)
    return "failed"


def resend_stuck(*, now: datetime | None = None) -> int:
    """Queue again every page whose delivery task was lost: still queued well
    after it fell due (its message vanished with a flushed or restarted
    Redis), or claimed by a worker that died mid-send. Sending twice is
    impossible: a duplicate task finds the page already claimed (``_claim``)."""
    now = now or timezone.now()
    stuck = list(
        Page.objects.filter(
            Q(status=PageStatus.QUEUED, due_at__lte=now - STUCK_GRACE)
            | Q(status=PageStatus.SENDING, claimed_at__lt=now - claim_lease())
        ).values_list("pk", flat=True)[:1000]
    )
    for page_id in stuck:
        celery_app.send_task("paging.deliver_page", args=[page_id])
    return len(stuck)


def send_test(method_id: int) -> str:
    method = ContactMethod.objects.get(pk=method_id)
    error = send(
        method.url,
        title="triage test notification",
        body=f"This is how triage will reach you through {method.name}.",
    )
    now = timezone.now()
    if error:
        result = plain_reason(error, url=method.url)
        ContactMethod.objects.filter(pk=method.pk).update(
            last_test_at=now, last_test_result=result[:300]
        )
        return result
    ContactMethod.objects.filter(pk=method.pk).update(
        last_test_at=now, last_test_result="delivered", reach_verified_at=now
    )
    return "delivered"
