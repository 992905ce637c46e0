"""triage.sessions: Django's session store and model backend with their
reads in SQL must still behave as Django's own."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from tests.factories import UserFactory
from triage.sessions import USER_FIELDS, SessionStore, UserBackend

pytestmark = pytest.mark.django_db


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_user_query_reads_every_field_of_the_model() -> None:
    assert list(USER_FIELDS) == [field.attname for field in User._meta.concrete_fields]


def test_a_logged_in_user_is_read_back_whole(root: User) -> None:
    user = UserBackend().get_user(root.pk)
    assert user is not None
    assert [getattr(user, name) for name in USER_FIELDS] == [
        getattr(root, name) for name in USER_FIELDS
    ]
    assert user.get_deferred_fields() == set()
    assert "Admin" in logged_in(root).get("/").content.decode()  # is_staff came through


def test_a_deactivated_or_deleted_user_is_logged_out(alice: User) -> None:
    client = logged_in(alice)
    assert client.get("/").status_code == 200
    alice.is_active = False
    alice.save()
    assert client.get("/").status_code == 302
    assert UserBackend().get_user(alice.pk) is None

    bob = UserFactory(username="bob")
    client = logged_in(bob)
    bob.delete()
    assert client.get("/")["Location"] == "/login?next=/"


def test_changing_the_password_ends_other_sessions(alice: User) -> None:
    client = logged_in(alice)
    assert client.get("/").status_code == 200
    alice.set_password("a-brand-new-passphrase")
    alice.save()
    assert client.get("/").status_code == 302


def test_an_expired_or_unknown_session_starts_over(alice: User) -> None:
    client = logged_in(alice)
    key = client.cookies["sessionid"].value
    assert SessionStore(key).load()["_auth_user_id"] == str(alice.pk)

    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(1))
    store = SessionStore(key)
    assert store.load() == {}
    assert store.session_key is None  # a new key is made when it is saved
    assert client.get("/").status_code == 302

    client.cookies["sessionid"] = "no-such-session-key-at-all"
    assert client.get("/").status_code == 302


def test_logging_in_and_out_through_the_forms(alice: User) -> None:
    alice.set_password("correct horse battery staple")
    alice.save()
    client = Client()
    response = client.post(
        "/login", {"username": "alice", "password": "correct horse battery staple"}
    )
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    client.post("/logout")
    assert client.get("/").status_code == 302
    assert client.post("/login", {"username": "alice", "password": "wrong"}).status_code == 200
