"""triage's outbound policy: contact methods, the post-mortem notice and the
heartbeat ping reach only public addresses, unless staff allow a host or a
network; checked when the form is saved and again at every connection.

The local receivers stand in for chat and push services; 127.0.0.2 plays an
allowed service of the LAN and 127.0.0.1 the internal one it must not reach.
"""

from __future__ import annotations

import ipaddress
import smtplib
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import pytest
from django.contrib.auth.models import User
from django.test import Client
from redis import Redis

from incidents.models import Service
from paging import notify
from paging.models import ContactMethod
from paging.tasks import ping_heartbeat
from postmortems import notify as postmortem_notify
from tests.factories import IncidentFactory, UserFactory, contact, policy_with_levels
from tests.postmortem_factories import postmortem, published
from tests.processes import celery_worker, wait_for
from tests.receiver import Receiver, receiver
from triage import outbound
from triage.models import OutboundAllowRule

pytestmark = pytest.mark.django_db

REFUSED = "refused by triage's outbound policy"


@pytest.fixture
def ana(db: None) -> User:
    return UserFactory(username="ana")


@pytest.fixture
def inside() -> Iterator[Receiver]:
    """A service on 127.0.0.1 that triage must not reach."""
    with receiver("127.0.0.1") as found:
        yield found


@pytest.fixture
def lan() -> Iterator[Receiver]:
    """A service on 127.0.0.2, which the tests that need it allow."""
    with receiver("127.0.0.2") as found:
        yield found


def allow(target: str) -> None:
    OutboundAllowRule.objects.create(target=target, note="test")


def http(inbox: Receiver) -> str:
    return inbox.url.replace("json://", "http://")


# --- the form -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "json://127.0.0.1:18931/del?method=DELETE&+Authorization=Bearer%20forged",
        "json://localhost/",
        "json://[::1]/",
        "json://169.254.169.254/latest/meta-data/",
        "json://2130706433/",
        "json://10.0.0.5/hook",
        "json://[::ffff:127.0.0.1]/",
        "ntfy://192.168.1.20/alerts",
        "mailto://user:pass@example.com?smtp=127.0.0.1",
    ],
)
def test_a_responder_cannot_add_a_contact_method_pointing_inside(
    alice_client: Client, url: str
) -> None:
    response = alice_client.post(
        "/account/notifications", {"method-name": "probe", "method-url": url}
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "triage&#x27;s outbound policy refuses" in html
    assert "staff can allow the host" in html
    assert not ContactMethod.objects.exists()


def test_a_scheme_outside_the_allow_list_is_refused_in_the_form(
    alice_client: Client, settings: Any
) -> None:
    response = alice_client.post(
        "/account/notifications", {"method-name": "x", "method-url": "rsyslog://logs.example/"}
    )
    assert response.status_code == 422
    assert "does not send to rsyslog:// URLs" in response.content.decode()
    settings.OUTBOUND_SCHEMES = ["ntfy"]
    response = alice_client.post(
        "/account/notifications", {"method-name": "x", "method-url": "json://hooks.example/"}
    )
    assert "does not send to json:// URLs. Allowed here: ntfy." in response.content.decode()
    assert not ContactMethod.objects.exists()


def test_a_lan_service_staff_allowed_can_be_added(alice_client: Client, alice: User) -> None:
    allow("127.0.0.2")
    response = alice_client.post(
        "/account/notifications", {"method-name": "ntfy", "method-url": "ntfy://127.0.0.2/pager"}
    )
    assert response.status_code == 302
    assert ContactMethod.objects.get(user=alice).url == "ntfy://127.0.0.2/pager"


def test_an_operator_can_allow_a_network_in_the_environment(
    alice_client: Client, alice: User, settings: Any
) -> None:
    settings.OUTBOUND_ALLOW = ["192.168.0.0/16"]
    response = alice_client.post(
        "/account/notifications", {"method-name": "n", "method-url": "ntfy://192.168.1.20/pager"}
    )
    assert response.status_code == 302
    assert ContactMethod.objects.filter(user=alice).count() == 1


# --- sending ----------------------------------------------------------------------


def test_a_method_saved_before_the_policy_is_not_contacted(ana: User, inside: Receiver) -> None:
    method = contact(ana, url=inside.url)
    assert notify.send_test(method.pk) == REFUSED
    method.refresh_from_db()
    assert method.last_test_result == REFUSED
    assert inside.requests == 0


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_send_test_notification_through_a_real_worker_obeys_the_staff_rules(
    alice_client: Client, alice: User, inside: Receiver, redis: Redis
) -> None:
    method = contact(alice, url=inside.url)  # saved before the policy existed

    def last_test() -> str:
        method.refresh_from_db()
        return method.last_test_result

    with celery_worker():
        alice_client.post(f"/account/notifications/{method.pk}/test")
        wait_for(lambda: last_test() == REFUSED, 30, "the worker refused the test")
        assert inside.requests == 0
        # The rule is committed: the worker process reads it at the next send.
        allow("127.0.0.0/8")
        alice_client.post(f"/account/notifications/{method.pk}/test")
        wait_for(lambda: last_test() == "delivered", 30, "the worker delivered the test")
    assert inside.messages[0]["title"] == "triage test notification"
    page = alice_client.get("/account/notifications").content.decode()
    assert "delivered" in page


def test_with_a_staff_rule_the_same_method_is_delivered(ana: User, inside: Receiver) -> None:
    allow("127.0.0.0/8")
    method = contact(ana, url=inside.url)
    assert notify.send_test(method.pk) == "delivered"
    assert inside.messages[0]["title"] == "triage test notification"


def test_a_host_name_that_resolves_inside_is_refused_when_sending(
    ana: User, inside: Receiver
) -> None:
    port = inside.url.split(":")[2].split("/")[0]
    method = contact(ana, url=f"json://localhost:{port}/hook")
    assert notify.send_test(method.pk) == REFUSED
    assert inside.requests == 0
    allow("localhost")  # a rule naming the host allows what it resolves to
    assert notify.send_test(method.pk) == "delivered"
    assert inside.requests == 1


def test_a_scheme_taken_off_the_allow_list_is_not_sent(
    ana: User, inside: Receiver, settings: Any
) -> None:
    allow("127.0.0.0/8")
    settings.OUTBOUND_SCHEMES = ["ntfy"]
    method = contact(ana, url=inside.url)
    assert notify.send_test(method.pk) == REFUSED
    assert inside.requests == 0


def test_a_redirect_from_an_allowed_host_to_a_refused_one_is_not_followed(
    ana: User, lan: Receiver, inside: Receiver
) -> None:
    allow("127.0.0.2")
    lan.redirect_to = http(inside) + "?stolen"
    # By default triage follows no redirect at all.
    assert notify.send_test(contact(ana, url=lan.url).pk) == "HTTP 302 from 127.0.0.2"
    # A URL asking apprise to follow redirects gets the next hop checked too.
    assert notify.send_test(contact(ana, url=lan.url + "?redirect=yes").pk) == REFUSED
    assert lan.requests == 2
    assert inside.requests == 0


def test_every_address_a_name_resolves_to_is_checked_and_only_checked_ones_are_used(
    ana: User, lan: Receiver, inside: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    allow("127.0.0.2")
    port = int(lan.url.split(":")[2].split("/")[0])
    real = socket.getaddrinfo
    answers: dict[str, list[list[str]]] = {
        # One good and one internal address: the name is refused.
        "mixed.example": [["127.0.0.2", "127.0.0.1"]],
        # Rebinding: the first answer is allowed, any later one points inside.
        "rebind.example": [["127.0.0.2"], ["127.0.0.1"], ["127.0.0.1"]],
    }
    asked: list[str] = []

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in answers:
            return real(host, *args, **kwargs)
        asked.append(host)
        queue = answers[host]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    mixed = contact(ana, url=f"json://mixed.example:{port}/hook")
    assert notify.send_test(mixed.pk) == REFUSED
    rebind = contact(ana, url=f"json://rebind.example:{port}/hook")
    assert notify.send_test(rebind.pk) == "delivered"
    assert asked == ["mixed.example", "rebind.example"]  # resolved once, connected to that
    assert len(lan.messages) == 1
    assert inside.requests == 0


def test_what_went_wrong_with_an_allowed_destination_is_said_plainly(
    ana: User, inside: Receiver
) -> None:
    allow("127.0.0.0/8")
    inside.fail_next = 1
    assert notify.send_test(contact(ana, url=inside.url).pk) == "HTTP 500 from 127.0.0.1"
    closed = contact(ana, url="json://127.0.0.1:9/")
    assert notify.send_test(closed.pk) == "connection refused by 127.0.0.1"
    inside.hang_next = 1
    slow = contact(ana, url=inside.url + "?rto=0.5")
    assert notify.send_test(slow.pk) == "timed out reaching 127.0.0.1"
    nowhere = contact(ana, url="json://nowhere.invalid/")
    assert notify.send_test(nowhere.pk) == "could not find nowhere.invalid"


@pytest.mark.django_db(transaction=True)
def test_a_refused_page_says_only_that_it_was_refused(
    ana: User, web: Service, inside: Receiver, redis: Redis
) -> None:
    contact(ana, url=inside.url.replace("/hook", "/del?method=DELETE"))
    web.escalation_policy = policy_with_levels((5, [ana]))
    web.save()
    page = IncidentFactory(service=web).pages.get()
    assert notify.deliver(page.pk) == "failed"
    page.refresh_from_db()
    assert page.error == REFUSED
    assert inside.requests == 0


# --- the other outbound URLs -------------------------------------------------------


def test_the_post_mortem_notice_obeys_the_policy(
    settings: Any, lan: Receiver, inside: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    settings.POSTMORTEM_NOTIFY_URL = inside.url
    pm = published(postmortem())
    assert postmortem_notify.notify_published(pm.pk) is False  # not retried: it would not help
    assert "refused by triage's outbound policy" in caplog.text
    allow("127.0.0.2")
    lan.redirect_to = http(inside)
    settings.POSTMORTEM_NOTIFY_URL = lan.url + "?redirect=yes"
    assert postmortem_notify.notify_published(pm.pk) is False
    assert lan.requests == 1
    settings.POSTMORTEM_NOTIFY_URL = inside.url
    allow("127.0.0.1")
    assert postmortem_notify.notify_published(pm.pk) is True
    assert inside.requests == 1


def test_the_heartbeat_ping_obeys_the_policy(
    settings: Any, lan: Receiver, inside: Receiver, redis: Redis
) -> None:
    settings.ESCALATION_HEARTBEAT_URL = http(inside) + "?ok"
    assert ping_heartbeat() == 0
    allow("127.0.0.2")
    lan.redirect_to = http(inside) + "?ok"
    settings.ESCALATION_HEARTBEAT_URL = http(lan)
    assert ping_heartbeat() == 0  # urllib follows redirects: the second hop is refused
    assert lan.requests == 1
    assert inside.requests == 0
    allow("127.0.0.1")
    settings.ESCALATION_HEARTBEAT_URL = http(inside) + "?ok"
    assert ping_heartbeat() == 200


# --- the guard itself --------------------------------------------------------------


def test_httpx_smtplib_and_urllib_are_guarded_too(inside: Receiver) -> None:
    policy = outbound.current_policy()
    with outbound.guarded(policy) as attempt:
        with pytest.raises(httpx2.ConnectError):
            httpx2.post(http(inside), json={})
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(http(inside), timeout=2)
        with pytest.raises(outbound.OutboundRefused):
            smtplib.SMTP("127.0.0.1", 25, timeout=2)
    assert attempt.refused
    assert inside.requests == 0
    allow("127.0.0.1")
    with outbound.guarded():
        assert httpx2.post(http(inside), json={"ok": 1}).status_code == 200
    assert inside.messages == [{"ok": 1}]


def test_async_httpx_is_guarded(inside: Receiver) -> None:
    async def post() -> int:
        async with httpx2.AsyncClient() as client:
            return (await client.post(http(inside), json={"async": 1})).status_code

    with outbound.guarded(outbound.current_policy()), pytest.raises(httpx2.ConnectError):
        anyio.run(post)
    assert inside.requests == 0
    allow("127.0.0.1")
    with outbound.guarded(outbound.current_policy()):
        assert anyio.run(post) == 200
    assert inside.messages == [{"async": 1}]


def test_the_guard_holds_only_in_the_thread_that_entered_it(inside: Receiver) -> None:
    entered, done = threading.Event(), threading.Event()
    outcome: list[str] = []

    def guarded_thread() -> None:
        with outbound.guarded(outbound.Policy(schemes=frozenset())):
            entered.set()
            done.wait(10)
            try:
                urllib.request.urlopen(http(inside), timeout=2)
                outcome.append("sent")
            except OSError:
                outcome.append("refused")

    thread = threading.Thread(target=guarded_thread)
    thread.start()
    assert entered.wait(10)
    # Meanwhile this thread (Redis, PostgreSQL, anything unguarded) is untouched.
    with urllib.request.urlopen(http(inside), timeout=2) as answer:
        assert answer.status == 200
    done.set()
    thread.join(10)
    assert outcome == ["refused"]
    assert inside.requests == 1


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "fec0::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a00:1",
        "2002:7f00:1::1",
        "2001:db8::1",
        "2001:0:a00:1::1",  # Teredo through 10.0.0.1
    ],
)
def test_inside_addresses_are_refused(address: str) -> None:
    assert not outbound.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "64:ff9b::808:808", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert outbound.is_public(ipaddress.ip_address(address))


def test_an_unreadable_rule_is_ignored_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    OutboundAllowRule.objects.bulk_create([OutboundAllowRule(target="not a host!")])
    policy = outbound.current_policy()
    assert policy.hosts == frozenset()
    assert "outbound allow rule ignored" in caplog.text


# --- the admin -----------------------------------------------------------------------


def test_staff_add_allow_rules_in_the_admin(root: User, alice_client: Client) -> None:
    staff = Client()
    staff.force_login(root)
    response = staff.post(
        "/admin/triage/outboundallowrule/add/",
        {"target": "NTFY.Home.LAN.", "note": "ntfy on the NAS"},
    )
    assert response.status_code == 302
    rule = OutboundAllowRule.objects.get()
    assert (rule.target, rule.added_by) == ("ntfy.home.lan", root)
    bad = staff.post("/admin/triage/outboundallowrule/add/", {"target": "10.0.0.0/33"})
    assert bad.status_code == 200
    assert "is neither a host name" in bad.content.decode()
    duplicate = staff.post("/admin/triage/outboundallowrule/add/", {"target": "ntfy.home.lan"})
    assert "already exists" in duplicate.content.decode()
    staff.post("/admin/triage/outboundallowrule/add/", {"target": " 192.168.1.20/24"})
    staff.post("/admin/triage/outboundallowrule/add/", {"target": "[FD00::1]"})
    assert list(OutboundAllowRule.objects.values_list("target", flat=True)) == [
        "192.168.1.0/24",
        "fd00::1",
        "ntfy.home.lan",
    ]
    assert staff.get("/admin/triage/outboundallowrule/").status_code == 200
    # A responder is no staff: sent to the admin's login, nothing added.
    refused = alice_client.post("/admin/triage/outboundallowrule/add/", {"target": "10.0.0.0/8"})
    assert refused.status_code == 302
    assert refused["Location"].startswith("/admin/login/")
    assert OutboundAllowRule.objects.count() == 3
