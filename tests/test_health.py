from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from pytest_django import DjangoDbBlocker

from triage.devstack import EmbeddedPostgres, EmbeddedRedis


def test_healthz_answers_ok_without_touching_dependencies(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_each_dependency_when_all_are_up(client: Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["postgres"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True


@pytest.mark.django_db(transaction=True)
def test_the_database_probe_is_bounded_to_two_seconds(client: Client) -> None:
    """Its query runs under a 2 s statement timeout, which ends with the probe."""
    seen: list[str] = []

    def spy(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        if sql == "SELECT 1":
            seen.append(
                context["cursor"].connection.execute("SHOW statement_timeout").fetchone()[0]
            )
        return result

    with connection.execute_wrapper(spy):
        assert client.get("/readyz").status_code == 200
    assert seen == ["2s"]
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"  # not left on the pooled connection


def test_health_endpoints_reject_writes(client: Client) -> None:
    assert client.post("/healthz").status_code == 405
    assert client.post("/readyz").status_code == 405


@pytest.fixture
def own_redis(tmp_path: Path, settings: Any) -> Iterator[EmbeddedRedis]:
    """A Redis server of this test's own, which the test may stop and start."""
    server = EmbeddedRedis(tmp_path / "redis")
    # Every cache alias (the sessions' too) on that server.
    settings.CACHES = {
        alias: {**config, "LOCATION": server.url} for alias, config in settings.CACHES.items()
    }
    yield server
    server.stop()


@pytest.mark.slow
@pytest.mark.django_db
def test_readyz_names_redis_while_it_is_down_and_recovers(
    client: Client, own_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    assert client.get("/readyz").status_code == 200

    own_redis.stop()
    down = client.get("/readyz")
    assert down.status_code == 503
    assert down.json()["down"] == ["redis"]
    assert down.json()["checks"]["postgres"]["ok"] is True
    assert client.get("/healthz").status_code == 200

    restarted = EmbeddedRedis(tmp_path / "redis")
    try:
        assert client.get("/readyz").status_code == 200
    finally:
        restarted.stop()


@pytest.mark.slow
def test_readyz_names_postgres_while_it_is_down_and_recovers(
    client: Client, tmp_path: Path, django_db_blocker: DjangoDbBlocker
) -> None:
    server = EmbeddedPostgres(tmp_path / "pg")
    original = dict(connection.settings_dict)
    with django_db_blocker.unblock():
        connection.close()
        connection.settings_dict.update({"HOST": str(tmp_path / "pg"), "NAME": "postgres"})
        try:
            assert client.get("/readyz").status_code == 200

            server.stop()
            down = client.get("/readyz")
            assert down.status_code == 503
            assert down.json()["down"] == ["postgres"]
            assert client.get("/healthz").status_code == 200

            server.start()
            back = client.get("/readyz")
            assert back.status_code == 200, back.json()
        finally:
            connection.close()
            connection.settings_dict.clear()
            connection.settings_dict.update(original)
            server.stop()
