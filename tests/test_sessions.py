"""Sessions and logins: Django's cached_db sessions (PostgreSQL, with a copy
in Redis) and its ModelBackend."""

from __future__ import annotations

import importlib
import time
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.contrib.sessions.backends.cached_db import SessionStore
from django.contrib.sessions.backends.db import SessionStore as DatabaseOnlyStore
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from redis import Redis

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

upgrade = importlib.import_module("triage.migrations.0002_stock_session_backend")


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_logged_in_user_is_read_back_whole(root: User) -> None:
    user = ModelBackend().get_user(root.pk)
    assert user is not None
    assert (user.username, user.is_staff, user.password) == (
        root.username,
        root.is_staff,
        root.password,
    )
    assert "Admin" in logged_in(root).get("/").content.decode()  # is_staff came through


def test_a_deactivated_or_deleted_user_is_logged_out(alice: User) -> None:
    client = logged_in(alice)
    assert client.get("/").status_code == 200
    alice.is_active = False
    alice.save()
    assert client.get("/").status_code == 302
    assert ModelBackend().get_user(alice.pk) is None

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

    # Expiring for real: the row's expire_date and the copy's Redis TTL.
    session = SessionStore(key)
    session.set_expiry(1)
    session.save()
    time.sleep(1.1)
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


def test_logging_out_ends_the_session_for_a_copied_cookie(alice: User) -> None:
    """Logout deletes the Redis copy too: the cookie is worthless afterwards."""
    client = logged_in(alice)
    stolen = Client()
    stolen.cookies["sessionid"] = client.cookies["sessionid"].value
    assert stolen.get("/").status_code == 200
    client.post("/logout")
    assert stolen.get("/").status_code == 302


def test_a_page_view_reads_its_session_from_redis(alice: User) -> None:
    client = logged_in(alice)
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/").status_code == 200
    assert not [q["sql"] for q in queries if "django_session" in q["sql"]]


def test_sessions_outlive_a_redis_flush_and_outage(
    alice: User, redis: Redis, settings: Any
) -> None:
    """PostgreSQL holds the sessions; Redis only a copy."""
    client = logged_in(alice)
    redis.flushdb()
    assert client.get("/").status_code == 200

    settings.CACHES = {
        **django_settings.CACHES,
        "sessions": {
            **django_settings.CACHES["sessions"],
            "LOCATION": "unix:///nonexistent/redis.sock",
        },
    }
    assert client.get("/").status_code == 200
    client.post("/logout")
    assert client.get("/").status_code == 302
    assert logged_in(alice).get("/").status_code == 200


def former_session(user: User) -> str:
    """A session as the release before this one stored it: in PostgreSQL
    only, naming the former backend."""
    store = DatabaseOnlyStore()
    store.update(
        {
            SESSION_KEY: str(user.pk),
            BACKEND_SESSION_KEY: "triage.sessions.UserBackend",
            HASH_SESSION_KEY: user.get_session_auth_hash(),
        }
    )
    store.create()
    assert store.session_key is not None
    return store.session_key


def test_sessions_from_before_the_upgrade_stay_logged_in(alice: User) -> None:
    key = former_session(alice)
    other = former_session(UserFactory(username="bob"))
    upgrade.forwards(apps, None)

    client = Client()
    client.cookies["sessionid"] = key
    assert client.get("/").status_code == 200
    assert SessionStore(other).load()[BACKEND_SESSION_KEY] == upgrade.STOCK

    # A rollback names the former backend again.
    upgrade.backwards(apps, None)
    assert DatabaseOnlyStore(other).load()[BACKEND_SESSION_KEY] == upgrade.FORMER


def test_without_the_rewrite_a_former_session_is_logged_out(alice: User) -> None:
    """Why the migration exists: Django refuses a backend it no longer has."""
    client = Client()
    client.cookies["sessionid"] = former_session(alice)
    assert client.get("/").status_code == 302
