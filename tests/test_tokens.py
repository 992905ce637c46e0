from __future__ import annotations

import hashlib
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from accounts.models import ApiToken
from accounts.tokens import create_api_token
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_a_new_token_is_shown_once_and_only_its_hash_is_stored(alice_client: Client) -> None:
    response = alice_client.post("/account/tokens", {"name": "grafana", "scope": "read"})
    html = response.content.decode()
    raw = re.search(r'id="new-token">(tri_[^<]+)<', html)
    assert raw is not None
    token = ApiToken.objects.get()
    assert token.token_hash == hashlib.sha256(raw.group(1).encode()).hexdigest()
    assert raw.group(1) not in str(ApiToken.objects.values().get())
    assert raw.group(1) not in alice_client.get("/account/tokens").content.decode()


def test_a_token_needs_a_name(alice_client: Client) -> None:
    response = alice_client.post("/account/tokens", {"name": "", "scope": "read"})
    assert response.status_code == 422
    assert not ApiToken.objects.exists()


def test_a_revoked_token_stops_working(alice_client: Client, alice: User, client: Client) -> None:
    created = create_api_token(user=alice, name="ci", scope="read")
    headers = {"Authorization": f"Bearer {created.raw}"}
    assert client.get("/", headers=headers).status_code in (200, 302)
    assert client.get("/incidents/1", headers=headers).status_code == 404

    alice_client.post(f"/account/tokens/{created.token.pk}/revoke")

    assert client.get("/incidents/1", headers=headers).status_code == 401


def test_using_a_token_records_when_it_was_last_used(client: Client, alice: User) -> None:
    created = create_api_token(user=alice, name="ci", scope="read")
    assert created.token.last_used_at is None
    client.get("/incidents/1", headers={"Authorization": f"Bearer {created.raw}"})
    created.token.refresh_from_db()
    assert created.token.last_used_at is not None


def test_people_cannot_revoke_each_others_tokens(alice_client: Client) -> None:
    bob_token = create_api_token(user=UserFactory(username="bob"), name="bob's", scope="write")
    assert alice_client.post(f"/account/tokens/{bob_token.token.pk}/revoke").status_code == 404
    bob_token.token.refresh_from_db()
    assert bob_token.token.is_active


def test_tokens_of_deactivated_users_stop_working(client: Client, alice: User) -> None:
    created = create_api_token(user=alice, name="ci", scope="read")
    alice.is_active = False
    alice.save()
    headers = {"Authorization": f"Bearer {created.raw}"}
    assert client.get("/incidents/1", headers=headers).status_code == 401
