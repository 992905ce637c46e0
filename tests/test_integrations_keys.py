"""Integration keys in the UI and the admin: shown once, stored hashed, rotated,
revoked, with ready-to-paste configuration; and the limiter behind them."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client
from redis import Redis

from incidents.models import Service
from integrations.config import snippets
from integrations.keys import authenticate_key, rotate_key
from integrations.models import Integration
from tests.integration_factories import integration
from triage import ratelimit

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(root: User) -> Client:
    client = Client()
    client.force_login(root)
    return client


def new_key(html: str) -> str:
    found = re.search(r'id="new-key">([0-9a-f]{32})<', html)
    assert found, "no key shown"
    return found.group(1)


def test_staff_create_a_key_that_is_shown_once_and_stored_hashed(
    staff_client: Client, web: Service
) -> None:
    response = staff_client.post(
        "/integrations",
        {
            "service": web.pk,
            "kind": "alertmanager",
            "name": "prod AM",
            "grouping": "group",
            "severity_label": "severity",
            "default_severity": "error",
            "rate_limit_per_minute": 120,
            "heartbeat_timeout_seconds": 300,
        },
    )
    assert response.status_code == 200
    html = response.content.decode()
    key = new_key(html)
    stored = Integration.objects.get()
    assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert stored.key_prefix == key[:8]
    assert key not in str(Integration.objects.values().get())
    assert f"/integrations/alertmanager/{key}" in html
    assert "credentials: &quot;" + key in html
    assert stored.created_by is not None
    assert stored.created_by.username == "root"
    assert key not in staff_client.get("/integrations").content.decode()


def test_invalid_settings_are_refused_with_field_errors(staff_client: Client, web: Service) -> None:
    response = staff_client.post(
        "/integrations",
        {
            "service": web.pk,
            "kind": "heartbeat",
            "name": "cron",
            "grouping": "group",
            "severity_label": "not a label!",
            "default_severity": "error",
            "rate_limit_per_minute": 0,
            "heartbeat_timeout_seconds": 5,
        },
    )
    assert response.status_code == 422
    assert not Integration.objects.exists()
    form = response.context["form"]
    assert set(form.errors) == {
        "severity_label",
        "rate_limit_per_minute",
        "heartbeat_timeout_seconds",
    }


def test_responders_see_integrations_but_cannot_create_them(
    alice_client: Client, web: Service
) -> None:
    integration(web, "heartbeat", name="nightly backup")
    page = alice_client.get("/integrations")
    assert page.status_code == 200
    assert b"nightly backup" in page.content
    assert b"New integration" not in page.content
    assert alice_client.post("/integrations", {"service": web.pk}).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(client: Client) -> None:
    assert client.get("/integrations").status_code == 302


def test_rotating_shows_a_new_key_and_the_old_one_stops_working(
    staff_client: Client, web: Service
) -> None:
    created = integration(web, "events_v2")
    response = staff_client.post(f"/integrations/{created.integration.pk}/rotate")
    key = new_key(response.content.decode())
    assert key != created.raw
    assert authenticate_key(created.raw) is None
    rotated = authenticate_key(key)
    assert rotated is not None
    assert rotated.rotated_at is not None


def test_revoking_stops_the_key(staff_client: Client, alice_client: Client, web: Service) -> None:
    created = integration(web, "events_v2")
    assert alice_client.post(f"/integrations/{created.integration.pk}/revoke").status_code == 403
    response = staff_client.post(f"/integrations/{created.integration.pk}/revoke")
    assert response.status_code == 302
    assert authenticate_key(created.raw) is None
    assert staff_client.post(f"/integrations/{created.integration.pk}/rotate").status_code == 404


def test_the_alertmanager_snippets_are_valid_yaml_pointing_at_triage(
    web: Service, settings: Any
) -> None:
    settings.BASE_URL = "https://triage.example.org"
    created = integration(web, "alertmanager")
    header, in_path = snippets(created.integration, created.raw)
    config = yaml.safe_load(header.text)["receivers"][0]["webhook_configs"][0]
    assert config["url"] == "https://triage.example.org/integrations/alertmanager"
    assert config["http_config"]["authorization"]["credentials"] == created.raw
    assert config["send_resolved"] is True
    url = yaml.safe_load(in_path.text)["receivers"][0]["webhook_configs"][0]["url"]
    assert url == f"https://triage.example.org/integrations/alertmanager/{created.raw}"
    later = snippets(created.integration)
    assert created.raw not in later[0].text
    assert created.integration.key_prefix in later[0].text


def test_the_events_and_heartbeat_snippets(web: Service) -> None:
    events = integration(web, "events_v2")
    texts = [snippet.text for snippet in snippets(events.integration, events.raw)]
    assert texts[0].endswith("/integrations/v2/enqueue")
    assert texts[1] == events.raw
    assert "curl" in texts[2]
    assert events.raw in texts[2]
    beat = integration(web, "heartbeat")
    assert snippets(beat.integration, beat.raw)[0].text.endswith(
        f"/integrations/heartbeat/{beat.raw}"
    )


def test_a_key_finds_what_the_orm_finds_with_its_service_in_one_query(
    web: Service, django_assert_num_queries: Any
) -> None:
    created = integration(web, "alertmanager", rate_limit_per_minute=7)
    integration(web, "events_v2")  # another key on the same service
    expected = Integration.objects.select_related("service").get(pk=created.integration.pk)
    with django_assert_num_queries(1):
        found = authenticate_key(created.raw)
        assert found is not None
        assert found.service.slug == web.slug
    for field in Integration._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(expected, field.attname), field.name
    for field in Service._meta.concrete_fields:
        assert getattr(found.service, field.attname) == getattr(expected.service, field.attname)
    assert found.get_kind_display() == "Prometheus Alertmanager"
    assert authenticate_key("0" * 32) is None
    assert authenticate_key("not a key") is None


def test_keys_are_case_insensitive_and_trimmed(web: Service) -> None:
    created = integration(web, "events_v2")
    assert authenticate_key(f" {created.raw.upper()} ") is not None


def test_rotating_a_key_keeps_the_integration(web: Service) -> None:
    created = integration(web, "heartbeat")
    rotated = rotate_key(created.integration)
    assert rotated.integration.pk == created.integration.pk


# --- admin -------------------------------------------------------------------


def test_the_admin_creates_a_key_and_shows_it_once(staff_client: Client, web: Service) -> None:
    response = staff_client.post(
        "/admin/integrations/integration/add/",
        {
            "service": web.pk,
            "kind": "events_v2",
            "name": "grafana",
            "grouping": "group",
            "severity_label": "severity",
            "default_severity": "error",
            "rate_limit_per_minute": 60,
            "heartbeat_timeout_seconds": 300,
        },
        follow=True,
    )
    assert response.status_code == 200
    messages = [str(m) for m in get_messages(response.wsgi_request)] or [
        m.message for m in response.context["messages"]
    ]
    text = " ".join(messages) + response.content.decode()
    key = re.search(r"<code>([0-9a-f]{32})</code>", text)
    assert key, text[:2000]
    stored = Integration.objects.get()
    assert stored.key_hash == hashlib.sha256(key.group(1).encode()).hexdigest()
    assert stored.rate_limit_per_minute == 60


@pytest.mark.parametrize(
    "url",
    [
        "/admin/integrations/integration/",
        "/admin/integrations/alert/",
        "/admin/integrations/integration/add/",
    ],
)
def test_the_admin_pages_load(staff_client: Client, web: Service, url: str) -> None:
    integration(web, "alertmanager")
    assert staff_client.get(url).status_code == 200


def test_the_admin_change_page_shows_the_configuration(staff_client: Client, web: Service) -> None:
    created = integration(web, "alertmanager")
    page = staff_client.get(f"/admin/integrations/integration/{created.integration.pk}/change/")
    assert b"webhook_configs" in page.content
    assert created.raw.encode() not in page.content


def test_admin_actions_rotate_and_revoke(staff_client: Client, web: Service) -> None:
    created = integration(web, "events_v2")
    pk = str(created.integration.pk)
    staff_client.post(
        "/admin/integrations/integration/", {"action": "rotate_selected", "_selected_action": [pk]}
    )
    assert authenticate_key(created.raw) is None
    staff_client.post(
        "/admin/integrations/integration/", {"action": "revoke_selected", "_selected_action": [pk]}
    )
    assert Integration.objects.get().revoked_at is not None


# --- the rate limiter ---------------------------------------------------------


def test_the_limiter_counts_per_minute_window(redis: Redis) -> None:
    start = 1_700_000_040.0  # the start of a minute
    verdicts = [ratelimit.hit("integration", "7", limit=2, now=start + i) for i in range(3)]
    assert [v.allowed for v in verdicts] == [True, True, False]
    assert verdicts[2].retry_after == 58
    assert ratelimit.hit("integration", "7", limit=2, now=start + 60).allowed  # a new window
    assert 0 < redis.ttl(ratelimit.key("integration", "7", int(start // 60))) <= 61


def test_the_limiter_fails_open_when_redis_is_down(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "unix:///nonexistent/redis.sock",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.1, "SOCKET_TIMEOUT": 0.1},
        }
    }
    with caplog.at_level("WARNING", logger="triage.ratelimit"):
        verdict = ratelimit.hit("integration", "7", limit=1)
    assert verdict.allowed
    assert "Redis is unavailable" in caplog.text
