"""Who may reach what, CSRF, the login brake, security headers, and secrets
kept out of logs.

The access table is checked against the URL configuration itself: a new
route that nobody has made an access decision for fails
``test_every_route_has_an_access_decision``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import signing
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from redis import Redis
from time_machine import TimeMachineFixture

from accounts.tokens import NewToken
from chat.models import ChatIdentity
from chat.services import ChatUser, link_url
from incidents.models import Service
from tests.factories import IncidentFactory, UserFactory
from tests.processes import app_env, check_deploy
from triage import ratelimit

pytestmark = pytest.mark.django_db

# Who may use each route, and the method that exercises it.
#   public  anyone, no login
#   login   a logged-in person; anonymous browsers are sent to log in
#   token   API clients with a token
#   either  a logged-in browser, or an API client with a token (api_or_login)
#   key     monitoring senders with an integration key in the URL or body
#   signed  chat services (Slack, Mattermost): a valid signature or token, never
#           a session, however privileged; everything else is a 401
#   staff   logged-in staff only
#   admin   Django admin: staff only, its own login redirect
#   scrape  Prometheus: open while METRICS_TOKEN is unset (the default); once it
#           is set, only requests bearing it, whoever is logged in
ACCESS: dict[str, tuple[str, str]] = {
    "healthz": ("GET", "public"),
    "readyz": ("GET", "public"),
    "metrics": ("GET", "scrape"),
    "admin/login/": ("GET", "public"),
    "admin/": ("GET", "admin"),
    "login": ("GET", "public"),
    "logout": ("POST", "public"),
    "report": ("GET", "public"),
    "status": ("GET", "public"),
    "postmortems/": ("GET", "public"),
    "postmortems/<int:pk>": ("GET", "login"),  # published ones are public
    "postmortems/<int:pk>.md": ("GET", "login"),  # published ones are public
    "incidents/<int:pk>/postmortem": ("POST", "either"),
    "postmortems/<int:pk>/preview": ("GET", "login"),  # what would be public, before it is
    "postmortems/<int:pk>/todos": ("GET", "either"),
    "postmortems/<int:pk>/status": ("POST", "login"),
    "postmortems/<int:pk>/followups": ("GET", "login"),
    "postmortems/<int:pk>/sections/<slug:name>": ("GET", "login"),
    "postmortems/<int:pk>/actions": ("POST", "either"),
    "postmortems/<int:pk>/actions/<int:item_id>": ("GET", "login"),
    "postmortems/<int:pk>/actions/<int:item_id>/status": ("POST", "login"),
    "postmortems/<int:pk>/actions/<int:item_id>/done": ("POST", "either"),
    "integrations": ("GET", "login"),
    "integrations/<int:pk>/rotate": ("POST", "staff"),
    "integrations/<int:pk>/revoke": ("POST", "staff"),
    "integrations/alertmanager": ("POST", "key"),
    "integrations/alertmanager/<str:key>": ("POST", "key"),
    "integrations/grafana": ("POST", "key"),
    "integrations/grafana/<str:key>": ("POST", "key"),
    "integrations/v2/enqueue": ("POST", "key"),
    "v2/enqueue": ("POST", "key"),
    "integrations/v2/change/enqueue": ("POST", "key"),
    "v2/change/enqueue": ("POST", "key"),
    "integrations/heartbeat/<str:key>": ("GET", "key"),
    "v1/openapi.json": ("GET", "public"),
    "v1/docs": ("GET", "public"),
    "v1/incidents/open": ("GET", "token"),
    "v1/incidents": ("GET", "token"),
    "v1/incidents/<incident_id>": ("GET", "token"),
    "v1/incidents/<incident_id>/acknowledge": ("POST", "token"),
    "v1/incidents/<incident_id>/resolve": ("POST", "token"),
    "v1/incidents/<incident_id>/escalate": ("POST", "token"),
    "v1/incidents/<incident_id>/notes": ("POST", "token"),
    "v1/services": ("GET", "token"),
    "v1/oncall": ("GET", "token"),
    "v1/insights": ("GET", "token"),
    "v1/": ("GET", "public"),  # django-ninja's root: a 404 for everyone
    "mcp": ("POST", "token"),
    "oncall": ("GET", "login"),
    "oncall/<slug:slug>.ics": ("GET", "token"),  # calendar apps: ?token=
    "oncall/people/<str:username>.ics": ("GET", "token"),
    "a/<str:token>": ("GET", "public"),  # a signed link from a notification acts for its person
    "account/notifications": ("GET", "login"),
    "account/notifications/<int:pk>/test": ("POST", "login"),
    "account/notifications/<int:pk>/delete": ("POST", "login"),
    "account/notifications/<int:pk>/row": ("GET", "login"),
    "oncall/unreachable": ("GET", "staff"),
    "oncall/mine": ("GET", "login"),
    "oncall/<slug:slug>/take": (
        "POST",
        "login",
    ),  # rotation members and staff (tests/test_shifts.py)
    "oncall/<slug:slug>/cover": ("POST", "login"),
    "oncall/cover/<int:pk>/accept": ("POST", "login"),  # the person asked and staff
    "oncall/cover/<int:pk>/decline": ("POST", "login"),
    "oncall/cover/<int:pk>/cancel": ("POST", "login"),  # the requester and staff
    "insights": ("GET", "login"),
    "": ("GET", "login"),
    "incidents": ("POST", "either"),
    "incidents/new": ("GET", "login"),
    "incidents/<int:pk>": ("GET", "either"),
    "incidents/<int:pk>/public-title": ("POST", "login"),
    "incidents/<int:pk>/storm-alerts/<int:item_id>/split": ("POST", "login"),
    "^incidents/(?P<pk>[0-9]+)/(?P<action>acknowledge|resolve|reopen|escalate|notes)$": (
        "POST",
        "either",
    ),
    "account/tokens": ("GET", "login"),
    "account/settings": ("GET", "login"),
    "account/settings/browser-time-zone": ("POST", "login"),
    "chat/slack/interactions": ("POST", "signed"),
    "chat/slack/commands": ("POST", "signed"),
    "chat/mattermost/actions": ("POST", "signed"),
    "chat/mattermost/commands": ("POST", "signed"),
    "chat/link/<str:token>": ("GET", "login"),
    "account/tokens/<int:pk>/revoke": ("POST", "login"),
    # Signing in with the OpenID Connect provider (404 while it is off).
    "oidc/authenticate/": ("GET", "public"),
    "oidc/callback/": ("GET", "public"),
}


def routes() -> list[str]:
    """Every route of the URL configuration (the admin counted as one)."""
    found: list[str] = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            text = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                if text == "admin/":
                    found.append(text)
                else:
                    walk(pattern.url_patterns, text)
            elif isinstance(pattern, URLPattern):
                found.append(text)

    walk(get_resolver().url_patterns, "")
    return list(dict.fromkeys(found))


def concrete(route: str) -> str:
    """A path for the route, with made-up values for its parameters."""
    if route.startswith("^"):
        return "/incidents/999999/acknowledge"
    path = re.sub(r"<slug:name>", "summary", route)
    path = re.sub(r"<(?:int:)?(?:pk|item_id|incident_id)>", "999999", path)
    path = re.sub(r"<(?:str|slug):\w+>", "nobody", path)
    return "/" + path


def send(client: Client, method: str, path: str) -> Any:
    if method == "POST":
        return client.post(path, data="{}", content_type="application/json")
    return client.get(path)


def sent_to_login(response: Any) -> bool:
    location = response.get("Location", "")
    return response.status_code == 302 and location.startswith(("/login?", "/admin/login/?"))


def chat_is_set_up(settings: Any) -> None:
    """Slack and Mattermost configured, so a 401 means "not verified", not "off"."""
    settings.SLACK_SIGNING_SECRET = "a-signing-secret"
    settings.SLACK_BOT_TOKEN = "xoxb-a-bot-token"
    settings.MATTERMOST_URL = "https://chat.example.org"
    settings.MATTERMOST_BOT_TOKEN = "a-bot-token"
    settings.MATTERMOST_COMMAND_TOKEN = "a-command-token"


def test_every_route_has_an_access_decision() -> None:
    assert sorted(set(routes()) - set(ACCESS)) == [], "add the new routes to ACCESS"
    assert sorted(set(ACCESS) - set(routes())) == [], "remove routes that are gone"


@pytest.mark.parametrize("route", sorted(ACCESS))
def test_anonymous_visitors_reach_only_public_routes(
    route: str, client: Client, redis: Redis, settings: Any
) -> None:
    method, kind = ACCESS[route]
    if kind == "signed":
        chat_is_set_up(settings)
    response = send(client, method, concrete(route))
    assert response.status_code < 500
    if kind == "public":
        assert not sent_to_login(response)
        assert response.status_code not in (401, 403)
    elif kind in ("login", "staff", "admin"):
        assert sent_to_login(response), (route, response.status_code)
    elif kind in ("token", "either"):
        assert response.status_code == 401 or sent_to_login(response), (route, response)
    elif kind == "scrape":  # no METRICS_TOKEN in the test settings
        assert response.status_code == 200, route
    elif kind == "signed":
        assert response.status_code == 401, (route, response.status_code)
    else:  # key: no valid key, nothing done
        assert response.status_code in (400, 401), (route, response.status_code)


@pytest.mark.parametrize("route", sorted(r for r, (_, k) in ACCESS.items() if k == "scrape"))
def test_with_a_metrics_token_only_its_bearer_may_scrape(
    route: str, alice_client: Client, root: User, settings: Any, redis: Redis
) -> None:
    settings.METRICS_TOKEN = "scrape-token-" + "s" * 30
    staff = Client()
    staff.force_login(root)
    path = concrete(route)
    refused = [
        Client().get(path),
        alice_client.get(path),
        staff.get(path),  # a session is not the token, not even staff's
        Client().get(path, headers={"Authorization": "Bearer wrong"}),
        Client().get(path, headers={"Authorization": f"Basic {settings.METRICS_TOKEN}"}),
        Client().get(path, headers={"Authorization": f"Bearer {settings.METRICS_TOKEN}x"}),
    ]
    for response in refused:
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert "triage_open_incidents" not in response.content.decode()
    scraped = Client().get(path, headers={"Authorization": f"Bearer {settings.METRICS_TOKEN}"})
    assert scraped.status_code == 200
    assert "triage_open_incidents" in scraped.content.decode()


@pytest.mark.parametrize("route", sorted(r for r, (_, k) in ACCESS.items() if k != "public"))
def test_people_reach_what_their_role_allows(
    route: str, alice_client: Client, root: User, redis: Redis, settings: Any
) -> None:
    method, kind = ACCESS[route]
    if kind == "signed":
        chat_is_set_up(settings)
    staff = Client()
    staff.force_login(root)
    as_person = send(alice_client, method, concrete(route))
    as_staff = send(staff, method, concrete(route))
    assert as_person.status_code < 500
    assert as_staff.status_code < 500
    if kind in ("login", "either"):
        assert not sent_to_login(as_person), route
        assert as_person.status_code not in (401, 403), route
    elif kind in ("staff", "admin"):
        assert as_person.status_code == 403 or sent_to_login(as_person), route
        assert not sent_to_login(as_staff), route
        assert as_staff.status_code != 403, route
    elif kind == "signed":  # a session is not a signature
        assert as_person.status_code == as_staff.status_code == 401, route


def test_csrf_is_enforced_on_browser_posts(
    alice: User, web: Service, redis: Redis, settings: Any
) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    incident = IncidentFactory(service=web)
    forms = [
        ("/incidents", {"title": "x", "service": web.pk, "severity": "info"}),
        (f"/incidents/{incident.pk}/acknowledge", {}),
        ("/account/tokens", {"name": "t", "scope": "read"}),
        ("/account/notifications", {"name": "n", "url": "json://localhost/"}),
        (f"/incidents/{incident.pk}/postmortem", {}),
        (link_url(ChatUser("slack", "U0ALICE", "alice")).removeprefix(settings.BASE_URL), {}),
        ("/logout", {}),
    ]
    for path, data in forms:
        response = browser.post(path, data, headers={"HX-Request": "true"})
        assert response.status_code == 403, path
    incident.refresh_from_db()
    assert incident.status == "triggered"
    assert not ChatIdentity.objects.exists()


def test_a_token_is_not_a_way_around_csrf_for_a_session(
    alice: User, web: Service, read_token: NewToken, redis: Redis
) -> None:
    # A read token can never write, even from a logged-in browser.
    incident = IncidentFactory(service=web)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    response = browser.post(
        f"/incidents/{incident.pk}/acknowledge",
        headers={"Authorization": f"Bearer {read_token.raw}"},
    )
    assert response.status_code == 403
    incident.refresh_from_db()
    assert incident.status == "triggered"


# --- the login brake ------------------------------------------------------------


def test_password_guessing_is_slowed_per_address_and_per_account(
    client: Client, alice: User, settings: Any, redis: Redis, one_window: None
) -> None:
    settings.LOGIN_RATE_LIMIT = 3
    alice.set_password("correct horse")
    alice.save()
    wrong = [
        client.post("/login", {"username": "alice", "password": f"guess{i}"}) for i in range(3)
    ]
    assert [r.status_code for r in wrong] == [200, 200, 200]

    blocked = client.post("/login", {"username": "alice", "password": "correct horse"})
    assert blocked.status_code == 429
    assert "Too many login attempts" in blocked.content.decode()
    assert 0 < int(blocked["Retry-After"]) <= settings.LOGIN_RATE_WINDOW
    assert "_auth_user_id" not in client.session

    # Another address guessing the same account is limited too.
    elsewhere = Client(REMOTE_ADDR="198.51.100.7")
    assert elsewhere.post("/login", {"username": "ALICE", "password": "x"}).status_code == 429
    # The admin's login form is the same form, with the same brake.
    assert client.post("/admin/login/", {"username": "bob", "password": "x"}).status_code == 429

    redis.flushdb()  # the window passed
    welcome = client.post("/login", {"username": "alice", "password": "correct horse"})
    assert welcome.status_code == 302
    assert client.session["_auth_user_id"] == str(alice.pk)


BOB_LOOKALIKES = [
    "\uff42\uff4f\uff42",  # fullwidth
    "\U0001d41b\U0001d428\U0001d41b",  # mathematical bold
    "\u24d1\u24de\u24d1",  # circled
]


@pytest.fixture
def quick_passwords(settings: Any) -> None:
    """A cheap hasher: these tests log in dozens of times, and PBKDF2's cost is
    not what they are about."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def bob(db: None, quick_passwords: None) -> User:
    user = UserFactory(username="bob")
    user.set_password("bobs password")
    user.save()
    return user


def logged_in(browser: Client, username: str, password: str, path: str = "/login") -> bool:
    """Log in through the form (and out again, the session ending as it would
    overnight), leaving the browser with whatever cookies that gave it."""
    response = browser.post(path, {"username": username, "password": password})
    if response.status_code != 302 or "_auth_user_id" not in browser.session:
        return False
    browser.post("/logout")
    return True


def attempt(browser: Client, username: str, password: str, path: str = "/login") -> int:
    return int(browser.post(path, {"username": username, "password": password}).status_code)


@pytest.mark.parametrize("addresses", ["one", "several behind the proxy"])
def test_a_flood_of_guesses_does_not_lock_a_person_out_of_their_usual_browser(
    addresses: str, bob: User, settings: Any, redis: Redis, one_window: None
) -> None:
    settings.LOGIN_RATE_LIMIT = 3
    settings.TRUSTED_PROXIES = 1
    # Bob's usual browser, and an attacker behind the same office address.
    usual = Client(headers={"X-Forwarded-For": "203.0.113.5"})
    assert logged_in(usual, "bob", "bobs password")

    def attacker(i: int) -> Client:
        source = "203.0.113.5" if addresses == "one" else f"198.51.100.{i}"
        return Client(headers={"X-Forwarded-For": source})

    guesses = [attempt(attacker(i), "bob", f"guess{i}") for i in range(6)]
    assert guesses == [200, 200, 200, 429, 429, 429]

    # Bob at his usual browser logs in all the same, and still can later on.
    assert logged_in(usual, "bob", "bobs password")
    assert attempt(attacker(9), "bob", "guess9") == 429
    assert logged_in(usual, "bob", "bobs password")
    # The trade-off: bob at a browser he never used is throttled with the attacker
    # until the window ends, as is a new browser's correct password for anyone.
    assert attempt(Client(headers={"X-Forwarded-For": "192.0.2.44"}), "bob", "bobs password") == 429

    # What bob's browser holds: out of reach of scripts and other sites, for months.
    settings.SECURE_COOKIES = True
    assert logged_in(usual, "bob", "bobs password")
    device = usual.cookies["triage_device"]
    assert device["httponly"]
    assert device["secure"]
    assert device["samesite"] == "Lax"
    assert device["path"] == "/"
    assert device["max-age"] == 180 * 24 * 3600


def test_a_flood_does_not_lock_the_admin_out_of_the_admin(
    root: User, quick_passwords: None, settings: Any, redis: Redis, one_window: None
) -> None:
    settings.LOGIN_RATE_LIMIT = 3
    root.set_password("root password")
    root.save()
    usual = Client()
    assert logged_in(usual, "root", "root password", "/admin/login/")
    attacker = Client()  # the same address as the admin's browser
    guesses = [attempt(attacker, "root", f"guess{i}", "/admin/login/") for i in range(5)]
    assert guesses == [200, 200, 200, 429, 429]

    response = usual.post("/admin/login/", {"username": "root", "password": "root password"})
    assert response.status_code == 302
    assert usual.session["_auth_user_id"] == str(root.pk)
    assert usual.get("/admin/").status_code == 200
    assert (
        attempt(Client(REMOTE_ADDR="192.0.2.45"), "root", "root password", "/admin/login/") == 429
    )


def test_a_trusted_browser_has_a_small_budget_of_its_own(
    bob: User, settings: Any, redis: Redis, one_window: None
) -> None:
    # Someone who copied bob's device cookie cannot guess on for ever with it.
    settings.LOGIN_RATE_LIMIT = 10
    settings.LOGIN_DEVICE_LIMIT = 2
    usual = Client()
    assert logged_in(usual, "bob", "bobs password")
    guesses = [attempt(usual, "bob", f"guess{i}") for i in range(3)]
    assert guesses == [200, 200, 429]
    assert attempt(usual, "bob", "bobs password") == 429
    # Those failures were the device's: bob elsewhere is not held back by them.
    assert logged_in(Client(REMOTE_ADDR="192.0.2.46"), "bob", "bobs password")


def test_successful_logins_spend_no_budget(
    bob: User, settings: Any, redis: Redis, one_window: None
) -> None:
    settings.LOGIN_RATE_LIMIT = 3
    settings.LOGIN_DEVICE_LIMIT = 3
    # New browsers (counted per address and per username), then one browser
    # again and again (counted per device): 20 logins in one window.
    assert all(logged_in(Client(), "bob", "bobs password") for _ in range(10))
    usual = Client()
    assert all(logged_in(usual, "bob", "bobs password") for _ in range(10))

    for browser in (Client(), usual):
        wrong = browser.post("/login", {"username": "bob", "password": "not it"})
        assert wrong.status_code == 200
        assert "Please enter a correct username and password" in wrong.content.decode()


@pytest.mark.parametrize("lookalike", BOB_LOOKALIKES)
def test_lookalike_usernames_share_the_accounts_brake(
    lookalike: str, bob: User, settings: Any, redis: Redis, one_window: None
) -> None:
    settings.LOGIN_RATE_LIMIT = 3
    # Django's form normalises the name (NFKC): the lookalike *is* bob.
    assert logged_in(Client(REMOTE_ADDR="192.0.2.1"), lookalike, "bobs password")

    guesses = [attempt(Client(REMOTE_ADDR=f"198.51.100.{i}"), "bob", "x") for i in range(3)]
    assert guesses == [200, 200, 200]
    assert attempt(Client(REMOTE_ADDR="192.0.2.2"), lookalike, "bobs password") == 429
    # And guesses spelled any of these ways are counted for bob in the first place.
    redis.flushdb()
    for i, spelling in enumerate(BOB_LOOKALIKES):
        assert attempt(Client(REMOTE_ADDR=f"198.51.100.{i}"), spelling, "x") == 200
    assert attempt(Client(REMOTE_ADDR="192.0.2.3"), "bob", "bobs password") == 429


def test_a_forged_expired_or_someone_elses_device_cookie_earns_nothing(
    bob: User,
    alice: User,
    settings: Any,
    redis: Redis,
    time_machine: TimeMachineFixture,
) -> None:
    settings.LOGIN_RATE_LIMIT = 3
    alice.set_password("alices password")
    alice.save()
    now = datetime(2026, 11, 23, 3, 0, 10, tzinfo=UTC)
    # A cookie bob's browser got 181 days ago (DEVICE_COOKIE_AGE is 180 days).
    time_machine.move_to(now - timedelta(days=181), tick=False)
    stale = Client()
    assert logged_in(stale, "bob", "bobs password")
    time_machine.move_to(now, tick=False)
    alices = Client()
    assert logged_in(alices, "alice", "alices password")
    usual = Client()
    assert logged_in(usual, "bob", "bobs password")
    genuine = usual.cookies["triage_device"].value

    for i in range(3):
        assert attempt(Client(REMOTE_ADDR=f"198.51.100.{i}"), "bob", "x") == 200

    payload = signing.loads(genuine, salt="triage.auth.device")
    forgeries = {
        "alice's device, bob's name": alices.cookies["triage_device"].value,
        "expired": stale.cookies["triage_device"].value,
        "altered": genuine[:-3] + ("AAA" if not genuine.endswith("AAA") else "BBB"),
        "signed with another key": signing.dumps(
            payload, key="not-our-secret", salt="triage.auth.device"
        ),
        "signed for something else": signing.dumps(payload),
        "not a device": signing.dumps("bob", salt="triage.auth.device"),
    }
    for what, value in forgeries.items():
        browser = Client(REMOTE_ADDR="192.0.2.9")
        browser.cookies["triage_device"] = value
        assert attempt(browser, "bob", "bobs password") == 429, what
        assert attempt(browser, "bob", "bobs password", "/admin/login/") == 429, what
    # The genuine one still works, at both doors.
    assert logged_in(usual, "bob", "bobs password")
    assert logged_in(usual, "bob", "bobs password", "/admin/login/")


def test_usernames_the_form_refuses_count_only_against_the_address(
    bob: User, settings: Any, redis: Redis, one_window: None
) -> None:
    settings.LOGIN_RATE_LIMIT = 3
    for username in ("", "b\x00b", "b" * 151):
        response = Client().post("/login", {"username": username, "password": "x"})
        assert response.status_code == 200
    assert attempt(Client(REMOTE_ADDR="192.0.2.10"), "bob", "bobs password") == 302
    assert attempt(Client(), "bob", "bobs password") == 429


def test_a_refund_never_outlives_its_window(redis: Redis, caplog: pytest.LogCaptureFixture) -> None:
    verdict = ratelimit.hit("login-user", "bob", limit=3, window=60, now=1_000_000.0)
    ratelimit.refund(verdict)
    assert redis.get(verdict.counted) == b"0"
    redis.delete(verdict.counted)  # the window ended
    ratelimit.refund(verdict)
    assert not redis.exists(verdict.counted)  # not a -1 budget without expiry
    unreachable = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    ratelimit.refund(verdict, connection=unreachable)
    assert "refund skipped" in caplog.text
    # What hit() answers while Redis is down: nothing was counted, nothing to give back.
    ratelimit.refund(ratelimit.Verdict(allowed=True, count=0, limit=1, retry_after=0))


def test_public_pages_share_a_budget_per_address(
    client: Client, alice_client: Client, settings: Any, redis: Redis, one_window: None
) -> None:
    settings.PUBLIC_RATE_LIMIT = 3
    answers = [client.get(path) for path in ("/status", "/postmortems/", "/report")]
    assert [answer.status_code for answer in answers] == [200, 200, 200]

    refused = client.get("/status")
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= settings.PUBLIC_RATE_WINDOW
    assert "Too many requests from your address" in refused.content.decode()
    # Another address, and logged-in responders, are not held back.
    assert Client(REMOTE_ADDR="198.51.100.8").get("/status").status_code == 200
    assert alice_client.get("/status").status_code == 200


# --- headers and deployment checks ------------------------------------------------


def test_pages_carry_the_security_headers(alice_client: Client) -> None:
    response = alice_client.get("/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert "frame-ancestors 'none'" in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.subprocess
def test_check_deploy_is_clean_under_production_settings() -> None:
    env = app_env(
        DEBUG="false",
        SECRET_KEY="a-long-random-production-secret-key-0123456789-abcdefghijklmnop",
        ALLOWED_HOSTS="triage.example.org",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_SSL_REDIRECT="true",
        TRUST_X_FORWARDED_PROTO="true",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        SECURE_HSTS_PRELOAD="true",
        BASE_URL="https://triage.example.org",
    )
    result = check_deploy(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


# --- secrets stay out of logs -------------------------------------------------------


def test_tokens_and_keys_never_reach_the_logs(
    client: Client,
    web: Service,
    read_token: NewToken,
    redis: Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from integrations.keys import create_integration

    heartbeat = create_integration(service=web, kind="heartbeat", name="backup")
    with caplog.at_level("DEBUG"):
        client.get("/v1/incidents", headers={"Authorization": f"Bearer {read_token.raw}"})
        client.get("/v1/incidents", headers={"Authorization": "Bearer tri_wrong_secret_value"})
        client.get(f"/oncall/{web.slug}.ics?token={read_token.raw}")
        client.get(f"/integrations/heartbeat/{heartbeat.raw}")
    logged = caplog.text + "".join(str(record.__dict__) for record in caplog.records)
    assert "GET /v1/incidents" in logged  # the access log did run
    for secret in (read_token.raw, "tri_wrong_secret_value", heartbeat.raw):
        assert secret not in logged
