"""Sending pages through apprise, one Page row per attempt."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from incidents.models import Status
from paging import escalation
from paging.messages import page_message
from paging.models import ContactMethod, CoverRequest, CoverStatus, Page, PageStatus
from paging.shifts import display_name, members, span
from triage import counters, outbound, readmodel
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


def send(url: str, *, title: str, body: str) -> outbound.Delivery:
    """Send one message under triage's outbound policy. The reason of a
    failure is a plain sentence for the person ("HTTP 404 from ntfy.example",
    "connection refused by 192.0.2.7"): no log lines, and nothing about a
    refused destination but that it was refused."""
    return outbound.send_apprise(url, title=title, body=body)


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
        readmodel.bump_after_commit()  # the dashboard shows each page's delivery
        return "cancelled"
    message = page_message(page).for_channel(page.contact_method.url)
    delivery = send(message.url, title=message.title, body=message.body)
    now = timezone.now()
    if delivery.ok:
        Page.objects.filter(pk=page.pk).update(status=PageStatus.SENT, sent_at=now)
        readmodel.bump_after_commit()  # the dashboard shows each page's delivery
        ContactMethod.objects.filter(pk=page.contact_method.pk).update(reach_verified_at=now)
        counters.count("pages", (page.channel, "sent"))
        escalation.page_sent(page, now=now)
        return "sent"
    error = page.error = delivery.reason
    # A destination the outbound policy refuses stays refused until staff
    # allow it: retrying would only delay the next level.
    final = page.attempt >= MAX_ATTEMPTS or error == outbound.REFUSED
    with transaction.atomic():
        Page.objects.filter(pk=page.pk).update(status=PageStatus.FAILED, error=error)
        readmodel.bump_after_commit()  # the dashboard shows each page's delivery
        counters.count("pages", (page.channel, "failed"))
        if not final:
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
    if final:
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
    delivery = send(
        method.url,
        title="triage test notification",
        body=f"This is how triage will reach you through {method.name}.",
    )
    now = timezone.now()
    if not delivery.ok:
        ContactMethod.objects.filter(pk=method.pk).update(
            last_test_at=now, last_test_result=delivery.reason[:300]
        )
        return delivery.reason
    ContactMethod.objects.filter(pk=method.pk).update(
        last_test_at=now, last_test_result="delivered", reach_verified_at=now
    )
    return "delivered"


def tell_about_cover(cover_id: int) -> int:
    """Tell the people a cover request asks (the person named, or everyone
    else on the schedule's rotations) through their first enabled contact
    method. Best effort, no retries: the request also waits on their "My
    shifts" page. Returns how many were reached."""
    cover = CoverRequest.objects.select_related("schedule", "requester", "asked").get(pk=cover_id)
    if cover.status != CoverStatus.PENDING:
        return 0
    people = (
        [cover.asked]
        if cover.asked
        else list(members(cover.schedule).exclude(pk=cover.requester_id))
    )
    title = f"{display_name(cover.requester)} asks you to cover {cover.schedule.name}"
    note = f" “{cover.note}”" if cover.note else ""
    body = (
        f"{span(cover.schedule, cover.start, cover.end)}.{note} "
        f"Accept or decline: {settings.BASE_URL}/oncall/mine"
    )
    reached = 0
    for person in people:
        method = (
            ContactMethod.objects.filter(user=person, enabled=True)
            .order_by("position", "pk")
            .first()
        )
        if method is not None and send(method.url, title=title, body=body).ok:
            reached += 1
    return reached
