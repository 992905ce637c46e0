from __future__ import annotations

import importlib.util
import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.apps import apps
from django.test import Client
from django.urls import URLResolver, get_resolver
from django.urls.resolvers import RegexPattern
from django.utils.module_loading import import_string
from gunicorn.config import Config  # type: ignore[import-untyped]
from redis import Redis

from incidents.models import Service
from integrations.keys import create_integration
from tests.processes import ROOT
from triage.logs import SECRET_PARAMETERS, ConsoleFormatter, ContextFilter, JsonFormatter, scrub

GUNICORN_CONF = ROOT / "triage" / "gunicorn.conf.py"


def _access_record(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    records = [record for record in caplog.records if record.name == "triage.access"]
    assert len(records) == 1
    return records[0]


def test_each_request_is_logged_once_as_one_json_object(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="triage.access")
    response = client.get("/healthz?token=secret-value", HTTP_X_REQUEST_ID="abc-123")

    line = JsonFormatter().format(_access_record(caplog))
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["level"] == "INFO"
    assert entry["logger"] == "triage.access"
    assert entry["method"] == "GET"
    assert entry["path"] == "/healthz"
    assert entry["status"] == 200
    assert entry["duration_ms"] >= 0
    assert entry["request_id"] == "abc-123"
    assert entry["time"].endswith("Z")
    assert "secret-value" not in line
    assert response["X-Request-ID"] == "abc-123"


def test_a_hostile_request_id_is_replaced(client: Client) -> None:
    response = client.get("/healthz", HTTP_X_REQUEST_ID="bad\nid injected=1")
    assert len(response["X-Request-ID"]) == 32
    assert "\n" not in response["X-Request-ID"]


def test_console_lines_are_readable(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="triage.access")
    client.get("/healthz")
    line = ConsoleFormatter().format(_access_record(caplog))
    assert "info" in line
    assert "GET /healthz 200" in line
    assert "status=200" in line


def test_console_lines_carry_the_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), exc_info=sys.exc_info()
        )
    assert "ValueError: boom" in ConsoleFormatter().format(record)


# --- integration keys in paths are scrubbed from every log line ---------------------


@pytest.fixture
def keys(web: Service) -> dict[str, str]:
    return {
        kind: create_integration(service=web, kind=kind, name=kind).raw
        for kind in ("alertmanager", "heartbeat")
    }


@pytest.fixture(params=["json", "console"])
def log_output(request: pytest.FixtureRequest, settings: Any) -> Iterator[io.StringIO]:
    """Every log line as the stdout handler writes it, in LOG_FORMAT json or console."""
    formatter_config = dict(settings.LOGGING["formatters"][request.param])
    formatter = import_string(formatter_config.pop("()"))(**formatter_config)
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    # Django's own 404/405 warnings ("Not Found: /…") are logged too, as they
    # are with a lower django.request level than the one triage ships.
    quiet = logging.getLogger("django.request")
    levels = (root.level, quiet.level)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    quiet.setLevel(logging.DEBUG)
    try:
        yield output
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        quiet.setLevel(levels[1])


@pytest.mark.django_db
def test_integration_keys_in_paths_never_reach_a_log_line(
    client: Client, keys: dict[str, str], log_output: io.StringIO, redis: Redis
) -> None:
    alertmanager, heartbeat = keys["alertmanager"], keys["heartbeat"]
    answers = {
        f"GET /integrations/alertmanager/{alertmanager}": 405,
        f"PUT /integrations/heartbeat/{heartbeat}": 405,
        f"GET /integrations/heartbeat/{heartbeat}/": 404,
        f"GET /integrations/alertmanager/{alertmanager}/": 404,
        f"GET /INTEGRATIONS//heartbeat/{heartbeat}": 404,
        f"POST /integrations/heartbeat/{heartbeat}": 200,
        f"POST /integrations/alertmanager/{alertmanager}": 400,
    }
    for request, status in answers.items():
        method, path = request.split(" ")
        assert client.generic(method, path).status_code == status, request
    # runserver's own line, as django.core.servers.basehttp logs it.
    logging.getLogger("django.server").warning(
        '"%s" %s %s', f"GET /integrations/heartbeat/{heartbeat}/ HTTP/1.1", "404", "179"
    )
    metrics = client.get("/metrics").content.decode()

    logged = log_output.getvalue()
    assert f"Method Not Allowed (PUT): /integrations/heartbeat/{heartbeat[:8]}…" in logged
    assert f"Not Found: /integrations/alertmanager/{alertmanager[:8]}…/" in logged
    assert f"GET /integrations/alertmanager/{alertmanager[:8]}… 405" in logged
    assert logged.count("triage.access") == len(answers) + 1
    for key in (alertmanager, heartbeat):
        assert key not in logged
        assert key not in metrics
    assert 'view="integrations-heartbeat"' in metrics  # labels name views, not paths


def test_a_new_keyed_route_is_scrubbed_without_naming_it(settings: Any) -> None:
    settings.ROOT_URLCONF = "tests.keyed_urls"
    line = "GET /hooks/7/deliver/0123456789abcdef0123456789abcdef/ 404"
    assert scrub(line) == "GET /hooks/7/deliver/01234567…/ 404"
    assert scrub("GET /hooks/7/other/0123456789abcdef 404") == (
        "GET /hooks/7/other/0123456789abcdef 404"
    )


def test_gunicorns_error_log_is_scrubbed(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("gunicorn_conf", GUNICORN_CONF)
    assert spec is not None
    assert spec.loader is not None
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    config = Config()
    config.set("errorlog", "-")
    logger = conf.logger_class(config)
    key = "0123456789abcdef0123456789abcdef"
    logger.error("Error handling request %s", f"/integrations/heartbeat/{key}?x=1")
    written = capsys.readouterr().err
    assert "Error handling request /integrations/heartbeat/01234567…?x=1" in written
    assert key not in written


def test_lines_logged_before_the_url_configuration_can_load_pass_unchanged(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = "Listening at: http://0.0.0.0:8000 /integrations/heartbeat/x"
    settings.ROOT_URLCONF = "tests"  # importable, but no urlpatterns (yet)
    assert scrub(line) == line
    monkeypatch.setattr(apps, "ready", False)  # gunicorn's master, before Django loads
    settings.ROOT_URLCONF = "triage.urls"
    assert scrub(line) == line


def test_no_regex_route_carries_a_secret() -> None:
    # Regex routes are not scrubbed (secret_routes reads path() routes only).
    def walk(patterns: list[Any]) -> Iterator[Any]:
        for pattern in patterns:
            yield pattern
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns)

    for pattern in walk(get_resolver().url_patterns):
        if isinstance(pattern.pattern, RegexPattern):
            assert not set(pattern.pattern.regex.groupindex) & SECRET_PARAMETERS
