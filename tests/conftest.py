from __future__ import annotations

from collections.abc import Iterator

import pytest
from django_redis import get_redis_connection
from redis import Redis


@pytest.fixture
def redis() -> Iterator[Redis]:
    """The real Redis the app uses, emptied before the test."""
    client: Redis = get_redis_connection("default")
    client.flushdb()
    yield client
    client.flushdb()
