from __future__ import annotations

import pytest
from django.test import Client


@pytest.mark.django_db
def test_metrics_expose_request_counters_in_prometheus_format(client: Client) -> None:
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    body = response.content.decode()
    assert "django_http_requests_total_by_method_total" in body
    assert "django_http_responses_total_by_status_total" in body


def test_metrics_merge_every_worker_in_multiprocess_mode(
    client: Client, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prometheus_client import Counter, values

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    # Counters created from now on write their values into files in the folder,
    # as they do in each gunicorn worker.
    values.ValueClass = values.get_value_class()
    try:
        Counter("triage_test_multiprocess", "a counter written by a worker").inc(3)
    finally:
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
        values.ValueClass = values.get_value_class()
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    body = client.get("/metrics").content.decode()
    assert "triage_test_multiprocess_total 3.0" in body
