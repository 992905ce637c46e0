"""Signing in with the identity provider in a real Chromium: the login
page's button, the provider's redirect, and back on the dashboard."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from accounts import oidc
from tests.oidc_provider import OidcProvider, oidc_provider

# Fixtures of the browser tests: Debian's Chromium, plain static files, and
# a failure on any Content-Security-Policy violation.
from tests.test_browser import (  # noqa: F401
    _plain_static_files,
    browser_type_launch_args,
    no_policy_violations,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def idp(settings: Any) -> Iterator[OidcProvider]:
    with oidc_provider() as provider:
        settings.OIDC_ISSUER = provider.issuer
        settings.OIDC_CLIENT_ID = provider.client_id
        settings.OIDC_CLIENT_SECRET = provider.client_secret
        settings.OIDC_PROVIDER_NAME = "Keycloak"
        settings.OIDC_STAFF_GROUP = "triage-admins"
        settings.OIDC_PASSWORD_LOGIN = False
        provider.person["groups"] = ["triage-admins"]
        oidc.forget_provider()
        yield provider
    oidc.forget_provider()


def test_a_person_signs_in_with_the_provider_and_lands_on_the_dashboard(
    page: Page, live_server: Any, idp: OidcProvider
) -> None:
    base = live_server.url
    page.goto(f"{base}/")
    expect(page).to_have_url(f"{base}/login?next=/")
    expect(page.get_by_label("Password")).to_have_count(0)  # OIDC_PASSWORD_LOGIN off

    page.get_by_role("link", name="Sign in with Keycloak").click()

    expect(page).to_have_url(f"{base}/")
    expect(page.get_by_text("All clear: no open incidents.")).to_be_visible()
    expect(page.get_by_role("button", name="Log out jo")).to_be_visible()
    expect(page.get_by_role("link", name="Admin")).to_be_visible()  # the group made jo staff
    assert "/authorize" in idp.paths, "the browser went to the provider"
    jo = User.objects.get(username="jo")
    assert (jo.get_full_name(), jo.is_staff) == ("Jo Okafor", True)


def test_a_refused_sign_in_comes_back_to_the_login_page_saying_so(
    page: Page, live_server: Any, idp: OidcProvider
) -> None:
    idp.id_token_claims["aud"] = "another-client"
    base = live_server.url
    page.goto(f"{base}/login")
    page.get_by_role("link", name="Sign in with Keycloak").click()
    expect(page).to_have_url(f"{base}/login")
    expect(page.get_by_text("Signing in with Keycloak did not work")).to_be_visible()
    assert not User.objects.exists()
