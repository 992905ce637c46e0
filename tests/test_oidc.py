"""Signing in with an OpenID Connect provider: the real mozilla-django-oidc
and PyJWT against a local provider that signs real tokens (tests/oidc_provider.py)."""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from redis import Redis

from accounts import oidc
from accounts.models import OidcIdentity
from tests.factories import UserFactory
from tests.oidc_provider import DROP, OidcProvider, new_key, oidc_provider
from triage import outbound

pytestmark = pytest.mark.django_db


@pytest.fixture
def idp(settings: Any, redis: Redis) -> Iterator[OidcProvider]:
    with oidc_provider() as provider:
        settings.OIDC_ISSUER = provider.issuer
        settings.OIDC_CLIENT_ID = provider.client_id
        settings.OIDC_CLIENT_SECRET = provider.client_secret
        settings.OIDC_PROVIDER_NAME = "Keycloak"
        oidc.forget_provider()
        yield provider
    oidc.forget_provider()


def sign_in(client: Client, next_page: str = "") -> Any:
    """What a browser does: to triage's sign-in, to the provider (which
    approves at once), and back to triage's callback with the code."""
    start = client.get("/oidc/authenticate/" + (f"?{urlencode({'next': next_page})}"))
    assert start.status_code == 302, start
    at_provider = requests.get(start["Location"], allow_redirects=False, timeout=10)
    assert at_provider.status_code == 302, at_provider.text
    back = urlsplit(at_provider.headers["Location"])
    assert back.path == "/oidc/callback/"
    return client.get(f"{back.path}?{back.query}")


def logged_in_as(client: Client) -> str:
    response = client.get("/")
    return response.context["user"].get_username() if response.status_code == 200 else ""


def refusal(response: Any, client: Client) -> str:
    """Where a refused sign-in lands: the login page, saying so."""
    assert response.status_code == 302
    assert response["Location"] == "/login"
    return client.get("/login").content.decode()


# --- first sign-in, linking, staff ------------------------------------------


def test_a_first_sign_in_creates_the_person_and_lands_on_the_dashboard(idp: OidcProvider) -> None:
    client = Client()
    response = sign_in(client)
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert logged_in_as(client) == "jo"
    jo = User.objects.get(username="jo")
    assert (jo.first_name, jo.last_name, jo.email) == ("Jo", "Okafor", "jo@example.org")
    assert not jo.has_usable_password(), "signs in with the provider, not a password"
    assert not jo.is_staff
    identity = OidcIdentity.objects.get(user=jo)
    assert (identity.issuer, identity.subject) == (idp.issuer, idp.person["sub"])
    assert identity.last_login_at is not None


def test_the_page_asked_for_is_where_the_sign_in_ends(idp: OidcProvider) -> None:
    client = Client()
    assert sign_in(client, next_page="/oncall")["Location"] == "/oncall"
    other = Client()
    assert sign_in(other, next_page="https://evil.example.net/")["Location"] == "/"


def test_the_next_sign_in_finds_the_same_person_by_subject_even_with_a_new_name(
    idp: OidcProvider,
) -> None:
    sign_in(Client())
    idp.person.update(preferred_username="jo.okafor", email="jo.okafor@example.org")
    client = Client()
    sign_in(client)
    assert logged_in_as(client) == "jo"
    assert User.objects.count() == 1
    assert User.objects.get().email == "jo.okafor@example.org"


def test_a_verified_email_links_the_existing_account(idp: OidcProvider) -> None:
    local = UserFactory(username="jokafor", email="Jo@Example.org", password="a-long-password")
    client = Client()
    sign_in(client)
    assert logged_in_as(client) == "jokafor"
    assert User.objects.count() == 1
    assert OidcIdentity.objects.get().user == local
    local.refresh_from_db()
    assert local.has_usable_password(), "linking takes nothing away"


def test_an_unverified_email_links_nothing_and_a_taken_username_is_not_taken_over(
    idp: OidcProvider,
) -> None:
    jo = UserFactory(username="jo", email="jo@example.org", is_staff=True)
    idp.person["email_verified"] = False
    client = Client()
    sign_in(client)
    assert logged_in_as(client) == "jo-2"
    newcomer = User.objects.get(username="jo-2")
    assert newcomer.email == "", "an address nobody verified is not stored"
    assert not newcomer.is_staff
    assert OidcIdentity.objects.get().user == newcomer
    jo.refresh_from_db()
    assert jo.is_staff


def test_an_email_several_accounts_share_links_none(
    idp: OidcProvider, caplog: pytest.LogCaptureFixture
) -> None:
    UserFactory(username="jo1", email="jo@example.org")
    UserFactory(username="jo2", email="jo@example.org")
    client = Client()
    with caplog.at_level(logging.WARNING, logger="accounts.oidc"):
        page = refusal(sign_in(client), client)
    assert "Signing in with Keycloak did not work" in page
    assert logged_in_as(client) == ""
    assert User.objects.count() == 2
    assert "several accounts have this e-mail" in caplog.text


def test_an_account_linked_to_one_subject_is_not_linked_to_another_by_email(
    idp: OidcProvider,
) -> None:
    sign_in(Client())
    idp.person["sub"] = "someone-else"
    client = Client()
    refusal(sign_in(client), client)
    assert logged_in_as(client) == ""
    assert OidcIdentity.objects.count() == 1


def test_usernames_are_made_from_what_the_provider_sends(idp: OidcProvider) -> None:
    idp.person.update(preferred_username="Jo Okafor!", email="jo@example.org")
    sign_in(Client())
    idp.person.update(sub="2", preferred_username=" ", email="sam@example.org")
    sign_in(Client())
    idp.person["sub"] = "3"
    del idp.person["preferred_username"], idp.person["email"]
    sign_in(Client())
    assert sorted(User.objects.values_list("username", flat=True)) == ["JoOkafor", "sam", "user"]


def test_staff_follows_the_group_claim_at_every_sign_in(idp: OidcProvider, settings: Any) -> None:
    settings.OIDC_STAFF_GROUP = "triage-admins"
    idp.person["groups"] = ["responders", "triage-admins"]
    client = Client()
    sign_in(client)
    assert User.objects.get(username="jo").is_staff
    assert client.get("/admin/").status_code == 200

    idp.person["groups"] = ["responders"]
    sign_in(Client())
    assert not User.objects.get(username="jo").is_staff


def test_a_nested_or_single_valued_group_claim_is_read(idp: OidcProvider, settings: Any) -> None:
    settings.OIDC_STAFF_GROUP = "admin"
    settings.OIDC_GROUPS_CLAIM = "realm_access.roles"
    idp.person["realm_access"] = {"roles": ["admin", 7]}
    sign_in(Client())
    assert User.objects.get(username="jo").is_staff
    settings.OIDC_GROUPS_CLAIM = "role"
    idp.person["role"] = "admin"
    sign_in(Client())
    assert User.objects.get(username="jo").is_staff
    idp.person["role"] = {"not": "a list"}
    sign_in(Client())
    assert not User.objects.get(username="jo").is_staff


def test_without_a_staff_group_staff_is_left_to_the_admin(idp: OidcProvider) -> None:
    UserFactory(username="jo", email="jo@example.org", is_staff=True)
    sign_in(Client())
    assert User.objects.get(username="jo").is_staff


def test_the_group_claim_never_takes_the_admin_from_a_superuser(
    idp: OidcProvider, settings: Any
) -> None:
    settings.OIDC_STAFF_GROUP = "triage-admins"
    UserFactory(username="root", email="jo@example.org", is_staff=True, is_superuser=True)
    sign_in(Client())
    assert User.objects.get(username="root").is_staff


def test_an_inactive_account_cannot_sign_in(idp: OidcProvider) -> None:
    UserFactory(username="jo", email="jo@example.org", is_active=False)
    client = Client()
    refusal(sign_in(client), client)
    assert logged_in_as(client) == ""


# --- what is refused ------------------------------------------------------------


def assert_refused(idp: OidcProvider) -> None:
    client = Client()
    page = refusal(sign_in(client), client)
    assert "Signing in with Keycloak did not work" in page
    assert logged_in_as(client) == ""
    assert not User.objects.exists()
    assert "/token" in idp.paths, "refused after the provider answered, not before"


def test_an_id_token_signed_by_another_key_is_refused(idp: OidcProvider) -> None:
    idp.signing_key = new_key()
    assert_refused(idp)


def test_an_id_token_with_another_nonce_is_refused(idp: OidcProvider) -> None:
    idp.id_token_claims["nonce"] = "a-nonce-from-another-sign-in"
    assert_refused(idp)


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "another-client"},
        {"aud": ["another-client"]},
        {"aud": ["triage", "another-client"]},  # several audiences, no azp naming us
        {"aud": DROP},
        {"iss": "https://sso.example.net"},
        {"exp": 1_000_000},  # long expired
        {"exp": DROP},
    ],
    ids=str,
)
def test_an_id_token_for_another_client_issuer_or_time_is_refused(
    idp: OidcProvider, claims: dict[str, Any]
) -> None:
    idp.id_token_claims.update(claims)
    assert_refused(idp)


def test_an_id_token_for_several_audiences_is_taken_when_we_are_its_authorized_party(
    idp: OidcProvider,
) -> None:
    idp.id_token_claims.update(aud=["triage", "account"], azp="triage")
    client = Client()
    sign_in(client)
    assert logged_in_as(client) == "jo"


def test_userinfo_about_another_subject_is_refused(idp: OidcProvider) -> None:
    idp.userinfo_claims["sub"] = "someone-else"
    assert_refused(idp)


def test_a_wrong_client_secret_is_refused_by_the_provider(idp: OidcProvider, settings: Any) -> None:
    settings.OIDC_CLIENT_SECRET = "not-the-secret"
    assert_refused(idp)


@pytest.mark.parametrize(
    "jwks", [{"keys": [{"kty": "RSA", "kid": "another"}]}, {"no": "keys"}], ids=str
)
def test_a_jwks_without_the_tokens_key_is_refused(idp: OidcProvider, jwks: Any) -> None:
    idp.jwks = lambda: jwks  # type: ignore[method-assign]
    assert_refused(idp)


def test_a_callback_this_browser_never_started_is_refused_without_asking_the_provider(
    idp: OidcProvider,
) -> None:
    client = Client()
    client.get("/oidc/authenticate/")  # a sign-in of its own, with its own state
    forged = client.get("/oidc/callback/?code=stolen&state=not-ours")
    refusal(forged, client)
    fresh = Client()
    refusal(fresh.get("/oidc/callback/?code=stolen&state=not-ours"), fresh)
    denied = Client()
    refusal(denied.get("/oidc/callback/?error=access_denied&state=x"), denied)
    assert "/token" not in idp.paths
    assert not User.objects.exists()


def test_a_code_works_once(idp: OidcProvider) -> None:
    client = Client()
    start = client.get("/oidc/authenticate/")
    back = urlsplit(
        requests.get(start["Location"], allow_redirects=False, timeout=10).headers["Location"]
    )
    assert client.get(f"{back.path}?{back.query}")["Location"] == "/"
    replay = Client()
    refusal(replay.get(f"{back.path}?{back.query}"), replay)


def test_the_code_is_exchanged_with_pkce_and_the_client_secret(idp: OidcProvider) -> None:
    sign_in(Client())
    (request,) = idp.token_requests
    assert request["authorization"].startswith("Basic "), "client_secret_basic, the default"
    assert "client_secret" not in request
    assert len(request["code_verifier"]) >= 43

    idp.discovery["token_endpoint_auth_methods_supported"] = ["client_secret_post"]
    oidc.forget_provider()
    sign_in(Client())
    assert idp.token_requests[1]["client_secret"] == idp.client_secret


# --- the provider's discovery document ---------------------------------------------


def test_a_provider_that_cannot_be_reached_sends_people_back_to_log_in(settings: Any) -> None:
    settings.OIDC_ISSUER = "http://127.0.0.1:9"  # nothing listens on discard
    settings.OIDC_PROVIDER_NAME = "Authentik"
    oidc.forget_provider()
    client = Client()
    page = refusal(client.get("/oidc/authenticate/"), client)
    assert "Authentik cannot be reached just now" in page


@pytest.mark.parametrize(
    "broken",
    [
        {"issuer": "https://sso.example.net"},
        {"token_endpoint": None},
        {"jwks_uri": "ftp://example.org/keys"},
    ],
    ids=str,
)
def test_a_discovery_document_that_does_not_describe_the_issuer_is_refused(
    idp: OidcProvider, broken: dict[str, Any]
) -> None:
    idp.discovery.update(broken)
    client = Client()
    assert "cannot be reached" in refusal(client.get("/oidc/authenticate/"), client)


def test_a_discovery_document_that_is_not_an_object_is_refused(idp: OidcProvider) -> None:
    idp.document = lambda: ["not", "a", "document"]  # type: ignore[assignment,method-assign,return-value]
    with pytest.raises(oidc.ProviderUnavailable):
        oidc.provider()


def test_discovery_is_read_at_the_first_sign_in_then_kept_for_an_hour(
    idp: OidcProvider,
) -> None:
    assert idp.paths == [], "nothing at start"
    sign_in(Client())
    sign_in(Client())
    assert idp.paths.count("/.well-known/openid-configuration") == 1
    assert idp.paths.count("/jwks") == 2, "keys at every sign-in: rotation just works"
    oidc.provider(now=10**9)
    assert idp.paths.count("/.well-known/openid-configuration") == 2


def test_a_password_login_never_asks_the_provider(idp: OidcProvider, redis: Redis) -> None:
    UserFactory(username="alice", password="correct horse battery")
    client = Client()
    client.post("/login", {"username": "alice", "password": "wrong"})
    client.post("/login?code=x&state=y", {"username": "alice", "password": "correct horse battery"})
    assert logged_in_as(client) == "alice"
    assert idp.paths == []


def test_the_provider_on_a_private_address_is_reached_although_the_outbound_policy_refuses_it(
    idp: OidcProvider,
) -> None:
    """The provider is the operator's choice, like OUTBOUND_ALLOW (accounts.oidc)."""
    loopback = ipaddress.ip_address("127.0.0.1")
    assert not outbound.current_policy().allows("127.0.0.1", loopback)
    client = Client()
    sign_in(client)
    assert logged_in_as(client) == "jo"


# --- the login page, and password login turned off ------------------------------------


def test_without_an_issuer_oidc_is_off(client: Client) -> None:
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404
    page = client.get("/login").content.decode()
    assert "Sign in with" not in page
    assert 'name="password"' in page


def test_the_login_page_offers_the_provider_beside_the_password_form(idp: OidcProvider) -> None:
    page = Client().get("/login?next=/oncall").content.decode()
    assert "Sign in with Keycloak" in page
    assert 'href="/oidc/authenticate/?next=/oncall"' in page
    assert 'name="password"' in page


def test_with_password_login_off_only_superusers_may_use_a_password(
    idp: OidcProvider, settings: Any, redis: Redis
) -> None:
    settings.OIDC_PASSWORD_LOGIN = False
    UserFactory(username="alice", password="alices password")
    UserFactory(username="root", password="root password", is_staff=True, is_superuser=True)

    page = Client().get("/login").content.decode()
    assert "Sign in with Keycloak" in page
    assert 'name="password"' not in page

    alice = Client()
    refused = alice.post("/login", {"username": "alice", "password": "alices password"})
    assert refused.status_code == 200
    assert "Password login is turned off" in refused.content.decode()
    assert logged_in_as(alice) == ""
    nobody = Client().post("/login", {"username": "nobody", "password": "x"})
    assert "Password login is turned off" in nobody.content.decode()

    # The admin's login page keeps the form: the way in while the provider is down.
    admin_page = Client().get("/admin/login/").content.decode()
    assert 'name="password"' in admin_page
    root = Client()
    welcome = root.post("/admin/login/", {"username": "root", "password": "root password"})
    assert welcome.status_code == 302
    assert logged_in_as(root) == "root"

    jo = Client()
    sign_in(jo)
    assert logged_in_as(jo) == "jo"


def test_turning_oidc_off_ends_the_sessions_it_started(idp: OidcProvider, settings: Any) -> None:
    client = Client()
    sign_in(client)
    assert logged_in_as(client) == "jo"
    settings.OIDC_ISSUER = ""
    assert logged_in_as(client) == ""


@pytest.mark.django_db(transaction=True)
def test_two_first_sign_ins_at_once_make_one_person(monkeypatch: pytest.MonkeyPatch) -> None:
    """A double click: both find no identity, both try to create jo; the
    username's unique index makes the second wait for the first, fail, and
    find the first's identity on its second pass."""
    claims = {"sub": "s-1", "preferred_username": "jo", "email": "jo@example.org"}
    both_looked = threading.Barrier(2, timeout=10)
    lookup = oidc._account_to_link

    def slow_lookup(*args: Any) -> User | None:
        both_looked.wait()  # once per thread: the second pass finds the identity
        return lookup(*args)

    monkeypatch.setattr(oidc, "_account_to_link", slow_lookup)
    results: list[User | None] = []

    def sign_in_once() -> None:
        try:
            results.append(oidc.sign_in(claims, issuer="https://sso.example.org"))
        finally:
            connection.close()

    threads = [threading.Thread(target=sign_in_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 2
    assert [user.username for user in results if user] == ["jo", "jo"]
    assert User.objects.count() == 1
    assert OidcIdentity.objects.count() == 1
