from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django_redis import get_redis_connection
from redis import Redis

from incidents.models import Service
from incidents.tokens import NewToken, create_api_token
from tests.factories import ServiceFactory, UserFactory


@pytest.fixture
def redis() -> Iterator[Redis]:
    """The real Redis the app uses, emptied before the test."""
    client: Redis = get_redis_connection("default")
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def alice(db: None) -> User:
    """A responder: logged in, not staff."""
    return UserFactory(username="alice")


@pytest.fixture
def root(db: None) -> User:
    """Staff with every permission, for the admin."""
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def alice_client(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def web(db: None) -> Service:
    return ServiceFactory(name="Web shop", slug="web")


@pytest.fixture
def write_token(alice: User) -> NewToken:
    return create_api_token(user=alice, name="ci", scope="write")


@pytest.fixture
def read_token(alice: User) -> NewToken:
    return create_api_token(user=alice, name="grafana", scope="read")
