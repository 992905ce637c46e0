"""Pages go out through apprise, one Page row per attempt."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from redis import Redis

from incidents import services
from incidents.models import Service
from paging import notify
from paging.models import Page, PageStatus
from tests.factories import IncidentFactory, UserFactory, contact, policy_with_levels
from tests.receiver import receiver
from triage import counters

# The receivers listen on 127.0.0.1, allowed here as staff would allow a LAN service.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("outbound_loopback")]


@pytest.fixture
def ana(db: None) -> User:
    return UserFactory(username="ana")


def paged_incident(web: Service, person: User, url: str) -> Page:
    contact(person, url=url)
    web.escalation_policy = policy_with_levels((5, [person]))
    web.save()
    IncidentFactory(service=web, title="Checkout returns 502", severity="critical")
    return Page.objects.get()


def test_a_page_is_delivered_and_recorded_once(web: Service, ana: User, redis: Redis) -> None:
    with receiver() as inbox:
        page = paged_incident(web, ana, inbox.url)
        assert notify.deliver(page.pk) == "sent"
        assert notify.deliver(page.pk) == "skipped"  # a duplicate task run
    page.refresh_from_db()
    assert page.status == PageStatus.SENT
    assert page.sent_at is not None
    assert len(inbox.messages) == 1
    assert inbox.messages[0]["title"] == f"[SEV1] #{page.incident_id} Checkout returns 502"
    assert f"/incidents/{page.incident_id}" in inbox.messages[0]["message"]
    assert counters.read_metric("pages") == {"json|sent": 1.0}


def test_a_failed_attempt_is_recorded_and_a_retry_is_queued_with_backoff(
    web: Service, ana: User, redis: Redis
) -> None:
    with receiver() as inbox:
        inbox.fail_next = 1
        page = paged_incident(web, ana, inbox.url)
        assert notify.deliver(page.pk) == "failed"
        retry = Page.objects.exclude(pk=page.pk).get()
        assert retry.attempt == 2
        assert retry.status == PageStatus.QUEUED
        assert retry.due_at >= page.created_at + timedelta(seconds=30)
        assert notify.deliver(retry.pk) == "sent"
    page.refresh_from_db()
    assert page.status == PageStatus.FAILED
    assert page.error
    assert len(inbox.messages) == 1
    assert counters.read_metric("pages") == {"json|failed": 1.0, "json|sent": 1.0}


def test_retries_stop_after_the_last_attempt(web: Service, ana: User, redis: Redis) -> None:
    page = paged_incident(web, ana, "json://127.0.0.1:9/unreachable")
    for _ in range(notify.MAX_ATTEMPTS):
        notify.deliver(Page.objects.filter(status=PageStatus.QUEUED).get().pk)
    assert Page.objects.filter(status=PageStatus.FAILED).count() == notify.MAX_ATTEMPTS
    assert not Page.objects.filter(status=PageStatus.QUEUED).exists()
    assert page.incident.pages.count() == notify.MAX_ATTEMPTS


def test_a_page_due_after_the_acknowledgement_is_cancelled(
    web: Service, ana: User, redis: Redis
) -> None:
    page = paged_incident(web, ana, "json://127.0.0.1:9/")
    services.acknowledge_incident(page.incident, actor=ana)
    assert notify.deliver(page.pk) == "cancelled"
    page.refresh_from_db()
    assert page.status == PageStatus.CANCELLED


def test_an_invalid_url_fails_with_a_clear_reason(web: Service, ana: User, redis: Redis) -> None:
    page = paged_incident(web, ana, "not a url")
    notify.deliver(page.pk)
    page.refresh_from_db()
    assert page.error == "not a valid apprise URL"


def test_a_test_notification_records_its_result(ana: User) -> None:
    with receiver() as inbox:
        method = contact(ana, url=inbox.url)
        assert notify.send_test(method.pk) == "delivered"
    method.refresh_from_db()
    assert method.last_test_result == "delivered"
    assert inbox.messages[0]["title"] == "triage test notification"


def test_pages_whose_task_was_lost_are_sent_again(web: Service, ana: User, redis: Redis) -> None:
    from django.utils import timezone

    with receiver() as inbox:
        page = paged_incident(web, ana, inbox.url)
        now = timezone.now()
        # Just due: its task is surely still on its way.
        assert notify.resend_stuck(now=now) == 0
        # Due long ago and still queued: the task vanished (Redis flushed).
        assert notify.resend_stuck(now=now + timedelta(minutes=1)) == 1
        # Claimed by a worker that then died mid-send: free again after the lease.
        Page.objects.filter(pk=page.pk).update(status=PageStatus.SENDING, claimed_at=now)
        assert notify.deliver(page.pk) == "skipped"  # the claim still holds
        later = now + notify.claim_lease() + timedelta(seconds=1)
        assert notify.resend_stuck(now=later) == 1
        Page.objects.filter(pk=page.pk).update(claimed_at=now - notify.claim_lease())
        assert notify.deliver(page.pk) == "sent"
        assert notify.resend_stuck(now=later) == 0
    assert len(inbox.messages) == 1
