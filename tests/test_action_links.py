"""Acting on an incident from the notification itself: signed links, a
confirmation page that changes nothing, and a POST that acts once."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from django.contrib.auth.models import User
from django.core import signing
from django.db import connection
from django.test import Client
from django.utils import timezone
from redis import Redis
from time_machine import TimeMachineFixture

from incidents import services
from incidents.models import EventKind, Incident, Service, Status
from paging import links, notify
from paging.messages import page_message
from paging.models import Page, UsedActionLink
from tests.factories import IncidentFactory, UserFactory, contact, policy_with_levels
from tests.processes import app_env, celery_worker, wait_for
from tests.receiver import Receiver, receiver

# The receivers listen on 127.0.0.1, allowed here as staff would allow a LAN service.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("outbound_loopback")]

BASE = "http://testserver"
LINE = re.compile(r"^(Acknowledge|Resolve|Escalate|Open): (\S+)$", re.MULTILINE)


@pytest.fixture(autouse=True)
def _links_point_here(settings: Any) -> None:
    settings.BASE_URL = BASE


@pytest.fixture
def inbox() -> Iterator[Receiver]:
    """Where pages land: a local HTTP server behind an apprise json:// URL."""
    with receiver() as found:
        yield found


@pytest.fixture
def bob(db: None) -> User:
    return UserFactory(username="bob")


@pytest.fixture
def service(web: Service, alice: User, bob: User, inbox: Receiver) -> Service:
    contact(alice, url=inbox.url)
    contact(bob, url=inbox.url)
    web.escalation_policy = policy_with_levels((5, [alice]), (5, [bob]))
    web.save()
    return web


def links_in(body: str) -> dict[str, str]:
    """The labelled links of a message body, as paths on this server."""
    found = dict(LINE.findall(body))
    assert all(url.startswith(f"{BASE}/") for url in found.values()), body
    return {label: url.removeprefix(BASE) for label, url in found.items()}


def paged(service: Service, inbox: Receiver, **fields: Any) -> tuple[Incident, dict[str, str]]:
    """An incident whose level-1 page reached alice; the links in her message."""
    incident = IncidentFactory(
        service=service,
        title="Checkout returns 502",
        severity="critical",
        details="upstream 10.0.0.7 refused",
        **fields,
    )
    page = Page.objects.get(incident=incident, level=1)
    assert notify.deliver(page.pk) == "sent"
    incident.refresh_from_db()  # paging started on commit
    return incident, links_in(inbox.messages[-1]["message"])


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "the confirmation page has a CSRF-protected form"
    return match.group(1)


def unchanged(incident: Incident) -> None:
    fresh = Incident.objects.get(pk=incident.pk)
    assert fresh.status == Status.TRIGGERED
    assert fresh.escalation_level == incident.escalation_level
    assert not fresh.timeline.exclude(kind__in=[EventKind.OPENED, EventKind.PAGED]).exists()
    assert not UsedActionLink.objects.exists()


# --- what the message carries -------------------------------------------------


def test_every_page_carries_acknowledge_resolve_escalate_and_open_links(
    service: Service, inbox: Receiver, redis: Redis
) -> None:
    incident, found = paged(service, inbox)
    assert list(found) == ["Acknowledge", "Resolve", "Escalate", "Open"]
    assert found["Open"] == f"/incidents/{incident.pk}"
    assert all(found[label].startswith("/a/") for label in ("Acknowledge", "Resolve", "Escalate"))
    assert len(set(found.values())) == 4
    assert inbox.messages[-1]["title"] == f"[SEV1] #{incident.pk} Checkout returns 502"


def test_a_page_whose_person_is_gone_carries_only_the_open_link(
    service: Service, inbox: Receiver, redis: Redis
) -> None:
    incident = IncidentFactory(service=service)
    page = Page.objects.get(incident=incident)
    page.user = None
    message = page_message(page)
    assert [action.label for action in message.actions] == ["Open"]
    query = message.for_channel("ntfy://ntfy.example/pager").url.split("?")[-1]
    assert "actions=" not in query
    assert "click=" in query


# --- a GET changes nothing ----------------------------------------------------------


def test_opening_a_link_shows_the_incident_and_changes_nothing(
    service: Service, inbox: Receiver, client: Client, redis: Redis
) -> None:
    incident, found = paged(service, inbox)
    page = client.get(found["Acknowledge"])
    assert page.status_code == 200
    html = page.content.decode()
    assert "Checkout returns 502" in html
    assert "SEV1" in html
    assert "Triggered" in html
    assert "Acknowledge as alice" in html
    assert page["Cache-Control"].startswith("max-age=0")
    # Link scanners also probe with HEAD and OPTIONS.
    assert client.head(found["Acknowledge"]).status_code == 200
    assert client.options(found["Acknowledge"]).status_code == 405
    for label in ("Resolve", "Escalate"):
        assert client.get(found[label]).status_code == 200
    unchanged(incident)
    # Nothing else about the incident shows: no details, no timeline, no pages.
    assert incident.details not in html
    assert "Paged" not in html


# --- the POST acts, once ---------------------------------------------------------------


def test_the_button_acknowledges_as_alice_from_a_notification_without_a_login(
    service: Service, inbox: Receiver, alice: User, redis: Redis
) -> None:
    incident, found = paged(service, inbox)
    phone = Client(enforce_csrf_checks=True)  # no session, like a phone's browser
    confirm = phone.get(found["Acknowledge"])
    token = csrf_token(confirm.content.decode())

    assert phone.post(found["Acknowledge"]).status_code == 403  # no CSRF token
    unchanged(incident)

    done = phone.post(found["Acknowledge"], {"csrfmiddlewaretoken": token})
    assert done.status_code == 200
    assert "Acknowledged by alice from a notification" in done.content.decode()
    assert "_auth_user_id" not in phone.session, "acting does not log anyone in"
    incident.refresh_from_db()
    assert incident.status == Status.ACKNOWLEDGED
    assert incident.acknowledged_by == alice
    event = incident.timeline.get(kind=EventKind.ACKNOWLEDGED)
    assert event.actor == alice
    assert event.message == "by alice from a notification"

    again = phone.post(found["Acknowledge"], {"csrfmiddlewaretoken": token})
    assert again.status_code == 410
    assert "already used" in again.content.decode()
    assert phone.get(found["Acknowledge"]).status_code == 410
    assert incident.timeline.filter(kind=EventKind.ACKNOWLEDGED).count() == 1


def test_one_link_posted_many_times_at_once_acts_once(
    service: Service, inbox: Receiver, redis: Redis
) -> None:
    incident, found = paged(service, inbox)
    barrier = threading.Barrier(4)
    codes: list[int] = []

    def tap() -> None:
        try:
            barrier.wait()
            codes.append(Client().post(found["Resolve"]).status_code)
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=tap) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(codes) == [200, 410, 410, 410]
    assert incident.timeline.filter(kind=EventKind.RESOLVED).count() == 1
    assert UsedActionLink.objects.count() == 1


def test_the_escalate_and_resolve_links_act_as_alice(
    service: Service, inbox: Receiver, client: Client, alice: User, redis: Redis
) -> None:
    incident, found = paged(service, inbox)
    assert client.post(found["Escalate"]).status_code == 200
    incident.refresh_from_db()
    assert incident.escalation_level == 2
    escalated = incident.timeline.get(kind=EventKind.ESCALATED)
    assert escalated.actor == alice
    assert "from a notification" in escalated.message

    # The same message's resolve link still works: each action once.
    resolved = client.post(found["Resolve"])
    assert resolved.status_code == 200
    assert "Resolved by alice from a notification" in resolved.content.decode()
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED
    assert incident.resolved_by == alice
    assert incident.timeline.get(kind=EventKind.RESOLVED).message == (
        "by alice from a notification"
    )


def test_an_action_that_no_longer_fits_explains_itself_and_keeps_the_link(
    service: Service, inbox: Receiver, client: Client, bob: User, redis: Redis
) -> None:
    incident, found = paged(service, inbox)
    services.acknowledge_incident(incident, actor=bob)
    page = client.get(found["Acknowledge"])
    assert page.status_code == 200
    assert "there is nothing for this link to do" in page.content.decode()
    assert "Acknowledge as alice" not in page.content.decode()

    refused = client.post(found["Acknowledge"])
    assert refused.status_code == 409
    assert "it cannot be acknowledged" in refused.content.decode()
    incident.refresh_from_db()
    assert incident.acknowledged_by == bob
    assert not UsedActionLink.objects.exists()


# --- links that do not work say why, and reveal nothing ----------------------------------


def as_someone_else(link: str, user: User) -> str:
    """The link with its payload rewritten for ``user``, the signature kept."""
    token = link.removeprefix("/a/")
    payload, rest = token.split(":", 1)
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["u"] = user.pk
    forged = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode())
    return f"/a/{forged.decode().rstrip('=')}:{rest}"


def test_a_link_for_bob_changed_to_act_as_alice_is_refused_and_reveals_nothing(
    service: Service, inbox: Receiver, client: Client, alice: User, redis: Redis
) -> None:
    incident = IncidentFactory(service=service, title="Checkout returns 502")
    services.escalate_incident(incident, actor=None)  # level 2: bob
    page = Page.objects.get(incident=incident, level=2)
    assert notify.deliver(page.pk) == "sent"
    forged = as_someone_else(links_in(inbox.messages[-1]["message"])["Acknowledge"], alice)
    incident.refresh_from_db()

    for response in (client.get(forged), client.post(forged)):
        assert response.status_code == 400
        html = response.content.decode()
        assert "This link is not valid" in html
        assert "Checkout returns 502" not in html
        assert f"#{incident.pk}" not in html
    assert client.get("/a/made-up").status_code == 400
    assert client.get("/a/").status_code == 404
    assert Incident.objects.get(pk=incident.pk).status == Status.TRIGGERED
    assert not UsedActionLink.objects.exists()


def test_a_signed_link_for_an_unknown_action_is_refused(
    service: Service, client: Client, alice: User, redis: Redis
) -> None:
    incident = IncidentFactory(service=service)
    for action in ("delete", 7):
        token = signing.dumps(
            {"u": alice.pk, "i": incident.pk, "a": action, "n": "x", "t": 0}, salt=links.SALT
        )
        assert client.get(f"/a/{token}").status_code == 400


def test_an_expired_link_is_refused_and_changes_nothing(
    service: Service,
    inbox: Receiver,
    client: Client,
    settings: Any,
    time_machine: TimeMachineFixture,
    redis: Redis,
) -> None:
    incident, found = paged(service, inbox)
    time_machine.move_to(timezone.now() + timedelta(hours=23, minutes=59), tick=False)
    assert client.get(found["Acknowledge"]).status_code == 200
    time_machine.move_to(timezone.now() + timedelta(minutes=2), tick=False)
    for response in (client.get(found["Acknowledge"]), client.post(found["Acknowledge"])):
        assert response.status_code == 410
        html = response.content.decode()
        assert "This link has expired" in html
        assert "work for 24 hours" in html
        assert "Checkout returns 502" not in html
    unchanged(incident)

    settings.ACTION_LINK_MAX_AGE = 7 * 24 * 3600  # the lifetime is a setting
    assert client.get(found["Acknowledge"]).status_code == 200


def test_links_stop_working_once_the_incident_is_resolved_even_if_reopened(
    service: Service, inbox: Receiver, client: Client, bob: User, redis: Redis
) -> None:
    incident, found = paged(service, inbox)
    services.resolve_incident(incident, actor=bob)
    for label in ("Acknowledge", "Resolve", "Escalate"):
        response = client.post(found[label])
        assert response.status_code == 410
        assert "was resolved" in response.content.decode()
        assert "Checkout returns 502" not in response.content.decode()
    services.reopen_incident(incident, actor=bob)
    assert client.get(found["Acknowledge"]).status_code == 410
    incident.refresh_from_db()
    assert incident.status == Status.TRIGGERED
    assert not UsedActionLink.objects.exists()


def test_a_link_for_someone_no_longer_in_triage_does_not_work(
    service: Service, inbox: Receiver, client: Client, alice: User, redis: Redis
) -> None:
    incident, found = paged(service, inbox)
    alice.is_active = False
    alice.save()
    response = client.post(found["Acknowledge"])
    assert response.status_code == 410
    assert "no longer in triage" in response.content.decode()
    unchanged(incident)


def test_the_signed_link_never_reaches_the_logs(
    service: Service,
    inbox: Receiver,
    client: Client,
    redis: Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, found = paged(service, inbox)
    token = found["Acknowledge"].removeprefix("/a/")
    with caplog.at_level("DEBUG"):
        client.get(found["Acknowledge"])
        client.post(found["Acknowledge"])
    logged = caplog.text + "".join(str(record.__dict__) for record in caplog.records)
    assert "GET /a/" in logged  # the access log did run
    assert token not in logged
    assert token.rsplit(":", 1)[-1] not in logged, "the signature is the secret part"


def test_link_pages_share_the_public_rate_limit(
    service: Service,
    inbox: Receiver,
    client: Client,
    settings: Any,
    redis: Redis,
    one_window: None,
) -> None:
    incident, found = paged(service, inbox)
    settings.PUBLIC_RATE_LIMIT = 2
    assert [client.get(found["Acknowledge"]).status_code for _ in range(2)] == [200, 200]
    assert client.post(found["Acknowledge"]).status_code == 429
    unchanged(incident)


# --- ntfy: buttons instead of links ---------------------------------------------------


class NtfyStandIn(BaseHTTPRequestHandler):
    """ntfy's publish API as apprise uses it: a JSON POST to the server root,
    with the buttons in the X-Actions header."""

    received: list[tuple[dict[str, str], dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append((dict(self.headers), json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"id":"x"}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def ntfy() -> Iterator[str]:
    NtfyStandIn.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), NtfyStandIn)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield f"ntfy://127.0.0.1:{server.server_port}/pager?priority=high"
    finally:
        server.shutdown()
        server.server_close()


def test_ntfy_shows_acknowledge_resolve_and_escalate_as_buttons(
    web: Service, alice: User, ntfy: str, client: Client, redis: Redis
) -> None:
    contact(alice, url=ntfy)
    web.escalation_policy = policy_with_levels((5, [alice]))
    web.save()
    incident = IncidentFactory(service=web, title="Checkout returns 502")
    assert notify.deliver(Page.objects.get().pk) == "sent"

    [(headers, payload)] = NtfyStandIn.received
    assert payload["topic"] == "pager"
    assert payload["title"].endswith("Checkout returns 502")
    assert "/a/" not in payload["message"], "ntfy gets buttons, not links in the text"
    assert headers["X-Priority"] == "high", "the person's own ntfy options are kept"
    assert unquote(headers["X-Click"]) == f"{BASE}/incidents/{incident.pk}"
    buttons = [part.split(", ") for part in headers["X-Actions"].split("; ")]
    assert [(kind, label) for kind, label, _ in buttons] == [
        ("view", "Acknowledge"),
        ("view", "Resolve"),
        ("view", "Escalate"),
    ]
    acknowledge = urlsplit(buttons[0][2]).path
    assert "Acknowledge as alice" in client.get(acknowledge).content.decode()
    assert client.post(acknowledge).status_code == 200
    incident.refresh_from_db()
    assert incident.status == Status.ACKNOWLEDGED


# --- end to end: a real worker sends the page ----------------------------------------------


@pytest.mark.slow
def test_links_sent_by_a_real_worker_act_after_the_confirmation_page(
    service: Service, inbox: Receiver, alice: User, redis: Redis
) -> None:
    with celery_worker(env=app_env(BASE_URL=BASE)):
        incident = IncidentFactory(service=service, title="Checkout returns 502")
        wait_for(lambda: len(inbox.messages) == 1, 30, "alice paged through the worker")
    incident.refresh_from_db()
    found = links_in(inbox.messages[0]["message"])
    assert list(found) == ["Acknowledge", "Resolve", "Escalate", "Open"]

    phone = Client(enforce_csrf_checks=True)
    confirm = phone.get(found["Acknowledge"])
    assert "Checkout returns 502" in confirm.content.decode()
    unchanged(incident)
    done = phone.post(
        found["Acknowledge"], {"csrfmiddlewaretoken": csrf_token(confirm.content.decode())}
    )
    assert done.status_code == 200
    incident.refresh_from_db()
    assert incident.acknowledged_by == alice
    assert incident.timeline.get(kind=EventKind.ACKNOWLEDGED).message == (
        "by alice from a notification"
    )
