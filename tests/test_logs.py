from __future__ import annotations

import json
import logging
import sys

import pytest
from django.test import Client

from triage.logs import ConsoleFormatter, JsonFormatter


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
