"""Who may reach what, CSRF, the login brake, security headers, and secrets
kept out of logs.

The access table is checked against the URL configuration itself: a new
route that nobody has made an access decision for fails
``test_every_route_has_an_access_decision``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from redis import Redis

from chat.models import ChatIdentity
from chat.services import ChatUser, link_url
from incidents.models import Service
from incidents.tokens import NewToken
from tests.factories import IncidentFactory
from tests.processes import app_env, check_deploy

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
ACCESS: dict[str, tuple[str, str]] = {
    "healthz": ("GET", "public"),
    "readyz": ("GET", "public"),
    "metrics": ("GET", "public"),
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
    "integrations/v2/enqueue": ("POST", "key"),
    "v2/enqueue": ("POST", "key"),
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
    "v1/": ("GET", "public"),  # django-ninja's root: a 404 for everyone
    "mcp": ("POST", "token"),
    "oncall": ("GET", "login"),
    "oncall/<slug:slug>.ics": ("GET", "token"),  # calendar apps: ?token=
    "oncall/people/<str:username>.ics": ("GET", "token"),
    "account/notifications": ("GET", "login"),
    "account/notifications/<int:pk>/test": ("POST", "login"),
    "account/notifications/<int:pk>/delete": ("POST", "login"),
    "": ("GET", "login"),
    "incidents": ("POST", "either"),
    "incidents/new": ("GET", "login"),
    "incidents/<int:pk>": ("GET", "either"),
    "^incidents/(?P<pk>[0-9]+)/(?P<action>acknowledge|resolve|reopen|escalate|notes)$": (
        "POST",
        "either",
    ),
    "account/tokens": ("GET", "login"),
    "chat/slack/interactions": ("POST", "signed"),
    "chat/slack/commands": ("POST", "signed"),
    "chat/mattermost/actions": ("POST", "signed"),
    "chat/mattermost/commands": ("POST", "signed"),
    "chat/link/<str:token>": ("GET", "login"),
    "account/tokens/<int:pk>/revoke": ("POST", "login"),
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
    elif kind == "signed":
        assert response.status_code == 401, (route, response.status_code)
    else:  # key: no valid key, nothing done
        assert response.status_code in (400, 401), (route, response.status_code)


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
