"""The Events API v2 key look-up, cached in each process (integrations.keys.admit):
a repeat sends no key query, and a key revoked, rotated or deleted, or whose
integration or service changed, is answered as the database says on the very
next request, in this process and in another one; with Redis down every
request asks the database."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from redis import Redis

from incidents.models import EventKind, Incident, Service
from integrations import keys
from integrations.keys import NewKey, revoke_integration, rotate_key
from integrations.models import Integration
from tests.integration_factories import integration, trigger
from tests.processes import ROOT, app_env

pytestmark = pytest.mark.django_db

REDIS_DOWN = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "unix:///nonexistent/redis.sock",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.1, "SOCKET_TIMEOUT": 0.1},
    }
}


@pytest.fixture
def events(web: Service, redis: Redis) -> NewKey:
    return integration(web, "events_v2")


def send(client: Client, key: str, dedup_key: str = "disk") -> Any:
    body = json.dumps(trigger(key, dedup_key=dedup_key))
    return client.post("/v2/enqueue", data=body, content_type="application/json")


def key_queries(client: Client, key: str) -> tuple[int, list[str]]:
    """(status, the key look-ups) of one trigger."""
    with CaptureQueriesContext(connection) as queries:
        status = send(client, key).status_code
    sent = [q["sql"] for q in queries.captured_queries]
    return status, [sql for sql in sent if "integrations_integration" in sql]


def test_a_known_key_costs_no_query_after_its_first_request(client: Client, events: NewKey) -> None:
    status, looked_up = key_queries(client, events.raw)
    assert (status, len(looked_up)) == (202, 1)
    for _ in range(3):
        assert key_queries(client, events.raw) == (202, [])
    incident = Incident.objects.get()
    assert incident.timeline.filter(kind=EventKind.ALERT).count() == 3


def test_the_cached_integration_is_what_the_query_finds(events: NewKey) -> None:
    first = keys.admit(events.raw, "events_v2")
    cached = keys.admit(events.raw, "events_v2")
    assert first.integration is not None
    assert cached.integration is not None
    assert cached.integration is not first.integration  # each request its own
    expected = Integration.objects.select_related("service").get(pk=events.integration.pk)
    for field in Integration._meta.concrete_fields:
        assert getattr(cached.integration, field.attname) == getattr(expected, field.attname)
    for field in Service._meta.concrete_fields:
        assert getattr(cached.integration.service, field.attname) == getattr(
            expected.service, field.attname
        )
    assert [first.verdict and first.verdict.count, cached.verdict and cached.verdict.count] == [
        1,
        2,
    ]


def test_a_revoked_key_is_refused_at_the_next_request(client: Client, events: NewKey) -> None:
    assert send(client, events.raw).status_code == 202
    assert send(client, events.raw).status_code == 202  # from the cache
    revoke_integration(events.integration)
    response = send(client, events.raw)
    assert response.status_code == 400
    assert response.json()["errors"] == ["Invalid routing key"]
    assert send(client, events.raw).status_code == 400


def test_a_rotated_key_is_refused_and_the_new_one_accepted(client: Client, events: NewKey) -> None:
    assert send(client, events.raw).status_code == 202
    assert send(client, events.raw).status_code == 202
    new = rotate_key(events.integration)
    assert send(client, events.raw).status_code == 400
    assert send(client, new.raw).status_code == 202
    assert send(client, new.raw).status_code == 202


def test_a_deleted_integration_is_refused(client: Client, web: Service, redis: Redis) -> None:
    doomed = integration(web, "events_v2")
    assert keys.admit(doomed.raw, "events_v2").integration is not None
    assert keys.admit(doomed.raw, "events_v2").integration is not None  # cached
    Integration.objects.filter(pk=doomed.integration.pk).get().delete()
    assert keys.admit(doomed.raw, "events_v2") == keys.Admitted(None, None)


def test_a_changed_limit_or_service_is_read_again(
    client: Client, events: NewKey, web: Service
) -> None:
    assert send(client, events.raw).status_code == 202
    assert send(client, events.raw).status_code == 202
    stored = Integration.objects.get(pk=events.integration.pk)
    stored.rate_limit_per_minute = 2
    stored.save()
    # The attempt counted under the old limit stands; the new limit applies.
    assert send(client, events.raw).status_code == 429
    web.name = "Web shop (renamed)"
    web.save()
    _, looked_up = key_queries(client, events.raw)
    assert len(looked_up) == 1
    admitted = keys.admit(events.raw, "events_v2")
    assert admitted.integration is not None
    assert admitted.integration.service.name == "Web shop (renamed)"


def test_a_heartbeat_ping_retires_no_cached_key(client: Client, web: Service, redis: Redis) -> None:
    events = integration(web, "events_v2")
    beat = integration(web, "heartbeat")
    assert send(client, events.raw).status_code == 202
    assert client.post(f"/integrations/heartbeat/{beat.raw}").status_code == 200
    assert key_queries(client, events.raw)[1] == []


def test_a_key_of_another_kind_is_refused_and_counts_nothing(
    client: Client, web: Service, redis: Redis
) -> None:
    beat = integration(web, "heartbeat", rate_limit_per_minute=1)
    for _ in range(3):
        assert send(client, beat.raw).status_code == 400
    # Its own endpoint's budget is whole.
    assert client.post(f"/integrations/heartbeat/{beat.raw}").status_code == 200
    assert keys.admit(beat.raw, "heartbeat").integration is not None
    cached = keys.admit(beat.raw, "heartbeat")  # cached as a heartbeat key...
    assert cached.integration is not None
    assert keys.admit(beat.raw, "events_v2").verdict is None  # ...never used as another


def test_a_flushed_redis_retires_every_entry(client: Client, events: NewKey, redis: Redis) -> None:
    assert send(client, events.raw).status_code == 202
    redis.flushdb()
    Integration.objects.filter(pk=events.integration.pk).update(name="changed quietly")
    admitted = keys.admit(events.raw, "events_v2")
    assert admitted.integration is not None
    assert admitted.integration.name == "changed quietly"


def test_an_entry_older_than_its_bound_is_read_again(
    client: Client, events: NewKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert send(client, events.raw).status_code == 202
    monkeypatch.setattr(keys, "MAX_AGE", 0.0)
    assert len(key_queries(client, events.raw)[1]) == 1


def test_the_cache_stays_bounded(events: NewKey, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "MAX_ENTRIES", 1)
    monkeypatch.setattr(keys, "_cache", {"x" * 64: (b"old", 0.0, (), ())})
    assert keys.admit(events.raw, "events_v2").integration is not None
    assert list(keys._cache) == [keys.digest(events.raw)]


@pytest.fixture
def cached_then_redis_down(
    client: Client, events: NewKey, settings: Any, redis: Redis
) -> Iterator[NewKey]:
    assert send(client, events.raw).status_code == 202
    settings.CACHES = REDIS_DOWN
    return events


def test_with_redis_down_every_request_asks_the_database(
    client: Client, cached_then_redis_down: NewKey, caplog: pytest.LogCaptureFixture
) -> None:
    events = cached_then_redis_down
    revoke_integration(events.integration)  # its bump fails: logged
    assert "not retired" in caplog.text
    assert send(client, events.raw).status_code == 400
    new = rotate_key(events.integration)
    Integration.objects.filter(pk=events.integration.pk).update(revoked_at=None)
    with caplog.at_level("WARNING", logger="triage.ratelimit"):
        status, looked_up = key_queries(client, new.raw)
        assert (status, len(looked_up)) == (202, 1)
        status, looked_up = key_queries(client, new.raw)
        assert (status, len(looked_up)) == (202, 1)  # nothing was cached
    assert "rate limit integration not checked" in caplog.text


CHILD = """
import json, sys
import django
django.setup()
from django.test import Client
client = Client()
for line in sys.stdin:
    body = json.dumps({"routing_key": line.strip(), "event_action": "trigger",
                       "dedup_key": "child", "payload": {"summary": "s", "source": "child",
                       "severity": "error"}})
    response = client.post("/v2/enqueue", data=body, content_type="application/json")
    print(response.status_code, flush=True)
"""


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_a_key_revoked_here_is_refused_at_once_by_another_process(
    web: Service, redis: Redis
) -> None:
    events = integration(web, "events_v2")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        env=app_env(ALLOWED_HOSTS="testserver", LOG_LEVEL="warning"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None
    assert child.stdout is not None

    def child_sends() -> str:
        assert child.stdin is not None
        assert child.stdout is not None
        child.stdin.write(events.raw + "\n")
        child.stdin.flush()
        return child.stdout.readline().strip()

    try:
        assert [child_sends(), child_sends()] == ["202", "202"]  # the second from its cache
        revoke_integration(events.integration)
        assert child_sends() == "400"
    finally:
        child.stdin.close()
        child.wait(timeout=30)
