"""GET/POST /report: the public report-a-problem page."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from redis import Redis
from time_machine import TimeMachineFixture

from incidents.models import EventKind, Incident, Service, Source
from postmortems import reports
from triage import ratelimit

pytestmark = pytest.mark.django_db


def filled(**overrides: str) -> dict[str, str]:
    form = {
        "service": "web",
        "what": "Checkout returns 502",
        "started": "about 14:00 UTC",
        "seeing": "502 Bad Gateway on /checkout",
        "expected": "To pay for my order",
        "contact": "",
        "website": "",
        "stamp": reports.fill_token(time.time() - 30),
    }
    form.update(overrides)
    return form


def test_the_page_explains_a_good_report_without_logging_in(client: Client, web: Service) -> None:
    response = client.get("/report")
    html = response.content.decode()
    assert response.status_code == 200
    for words in (
        "What is broken",
        "When it started",
        "time zone",
        "What you see",
        "What you expected",
    ):
        assert words in html
    assert "Nothing works." in html  # the bad example
    assert 'name="website"' in html
    assert 'name="stamp"' in html
    assert "viktorbarzin" not in html.lower()


def test_a_report_opens_an_incident_that_pages(client: Client, web: Service, redis: Redis) -> None:
    response = client.post("/report", filled(contact="sam@example.org"))
    assert response.status_code == 200
    incident = Incident.objects.get()
    assert f"#{incident.pk}" in response.content.decode()
    assert (incident.title, incident.source, incident.service) == (
        "Checkout returns 502",
        Source.REPORT,
        web,
    )
    assert incident.severity == "warning"
    assert "When it started: about 14:00 UTC" in incident.details
    assert "sam@example.org" in incident.details
    opened = incident.timeline.get(kind=EventKind.OPENED)
    assert opened.actor is None
    assert opened.data == {"reported": True}


def test_with_reports_page_off_the_incident_is_marked_unpaged(
    client: Client, web: Service, redis: Redis, settings: Any
) -> None:
    settings.REPORTS_PAGE = False
    client.post("/report", filled())
    opened = Incident.objects.get().timeline.get(kind=EventKind.OPENED)
    assert opened.data == {"reported": True, "unpaged": True}


def test_without_a_service_the_default_service_is_used(
    client: Client, web: Service, redis: Redis, settings: Any
) -> None:
    response = client.post("/report", filled(service=""))
    assert response.status_code == 422
    assert "Choose the service that is broken" in response.content.decode()
    assert not Incident.objects.exists()
    settings.REPORTS_DEFAULT_SERVICE = "web"
    assert "We will file it under Web shop" in client.get("/report").content.decode()
    assert client.post("/report", filled(service="")).status_code == 200
    assert Incident.objects.get().service == web


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"what": ""}, "This field is required"),
        ({"seeing": "x" * 5001}, "at most 5000 characters"),
        ({"service": "nope"}, "Choose one of the listed services"),
    ],
)
def test_bad_input_shows_form_errors_and_writes_nothing(
    client: Client, web: Service, redis: Redis, overrides: dict[str, str], error: str
) -> None:
    response = client.post("/report", filled(**overrides))
    assert response.status_code == 422
    assert error in response.content.decode()
    assert not Incident.objects.exists()


def test_the_honeypot_refuses_bots(client: Client, web: Service, redis: Redis) -> None:
    response = client.post("/report", filled(website="http://spam.example"))
    assert response.status_code == 400
    assert "Leave the last field empty" in response.content.decode()
    assert not Incident.objects.exists()


def test_a_form_sent_faster_than_a_person_types_is_refused(
    client: Client, web: Service, redis: Redis
) -> None:
    response = client.post("/report", filled(stamp=reports.fill_token()))
    assert response.status_code == 400
    assert "faster than a person can type" in response.content.decode()
    assert not Incident.objects.exists()


@pytest.mark.parametrize(
    ("stamp", "error"),
    [("", "not sent from the report page"), ("forged:stamp", "not sent from the report page")],
)
def test_a_missing_or_forged_stamp_is_refused(
    client: Client, web: Service, redis: Redis, stamp: str, error: str
) -> None:
    response = client.post("/report", filled(stamp=stamp))
    assert response.status_code == 400
    assert error in response.content.decode()


def test_a_day_old_form_must_be_reloaded(
    client: Client, web: Service, redis: Redis, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(datetime(2026, 4, 14, 9, 0, tzinfo=UTC), tick=False)
    stamp = reports.fill_token()
    time_machine.shift(timedelta(hours=25))
    response = client.post("/report", filled(stamp=stamp))
    assert response.status_code == 400
    assert "more than a day old" in response.content.decode()


def test_reports_are_rate_limited_per_address(
    client: Client, web: Service, redis: Redis, settings: Any, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(datetime(2026, 4, 14, 9, 1, tzinfo=UTC), tick=False)
    settings.REPORTS_RATE_LIMIT = 2
    assert client.post("/report", filled()).status_code == 200
    assert client.post("/report", filled(what="")).status_code == 422  # attempts count too
    refused = client.post("/report", filled())
    elsewhere = client.post("/report", filled(), REMOTE_ADDR="198.51.100.7")

    assert refused.status_code == 429
    assert "Too many reports from your address: at most 2 every 10 minutes" in (
        refused.content.decode()
    )
    assert refused["Retry-After"] == "540"  # the window ends at 09:10
    assert elsewhere.status_code == 200
    assert Incident.objects.count() == 2


def test_the_window_ends_and_its_counter_expires_with_it(redis: Redis) -> None:
    now = 1_800_000_000.0
    first = ratelimit.hit("report", "a", limit=1, window=60, now=now)
    second = ratelimit.hit("report", "a", limit=1, window=60, now=now + 10)
    later = ratelimit.hit("report", "a", limit=1, window=60, now=now + 60)
    assert (first.allowed, second.allowed, later.allowed) == (True, False, True)
    assert second.retry_after == 50
    assert 0 < redis.ttl(ratelimit.key("report", "a", int(now // 60))) <= 61


def test_behind_a_trusted_proxy_the_forwarded_address_is_limited(
    client: Client, web: Service, redis: Redis, settings: Any, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(datetime(2026, 4, 14, 9, 1, tzinfo=UTC), tick=False)
    settings.REPORTS_RATE_LIMIT = 1
    settings.TRUSTED_PROXIES = 1
    headers = {"X-Forwarded-For": "203.0.113.9, 198.51.100.1"}
    first = client.post("/report", filled(), headers=headers)
    same_client = client.post("/report", filled(), headers=headers)
    other_client = client.post(
        "/report", filled(), headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.2"}
    )
    assert [first.status_code, same_client.status_code, other_client.status_code] == [200, 429, 200]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_when_redis_is_down_reports_are_allowed_and_a_warning_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    unreachable = Redis(host="127.0.0.1", port=closed_port(), socket_connect_timeout=0.2)
    verdict = ratelimit.hit("report", "a", limit=1, window=60, connection=unreachable)
    assert verdict.allowed
    assert "Redis is unavailable" in caplog.text


def test_only_get_and_post_are_allowed(client: Client) -> None:
    response: Any = client.put("/report")
    assert response.status_code == 405
