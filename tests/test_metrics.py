from __future__ import annotations

import subprocess
from typing import Any

import pytest
from django.test import Client

from paging import state
from tests.factories import IncidentFactory
from tests.processes import BIN, ROOT, app_env
from triage import counters


@pytest.mark.django_db
def test_metrics_expose_request_counters_in_prometheus_format(client: Client) -> None:
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    body = response.content.decode()
    assert "django_http_requests_total_by_method_total" in body
    assert "django_http_responses_total_by_status_total" in body


@pytest.mark.django_db
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


@pytest.mark.django_db(transaction=True)
def test_paging_figures_are_computed_at_scrape_time(client: Client, redis: Any) -> None:
    IncidentFactory(severity="critical")
    state.record_heartbeat(1_800_000_000.0)
    counters.count("pages", ("ntfy", "sent"))
    counters.count("pages", ("ntfy", "sent"))
    counters.observe("escalation_lateness", 0.3, (0.1, 0.5, 1))
    body = client.get("/metrics").content.decode()
    assert 'triage_open_incidents{severity="critical"} 1.0' in body
    assert "triage_escalation_heartbeat_timestamp_seconds 1.8e+09" in body
    assert 'triage_pages_total{channel="ntfy",outcome="sent"} 2.0' in body
    assert 'triage_escalation_lateness_seconds_bucket{le="0.5"} 1.0' in body
    assert "triage_escalation_due_backlog 0.0" in body
    assert 'triage_celery_queue_length{queue="celery"}' in body


def test_a_scrape_during_a_redis_outage_still_answers(
    client: Client, settings: Any, db: None
) -> None:
    settings.CACHES = {  # every alias, the sessions' too
        alias: {**config, "LOCATION": "redis://127.0.0.1:1/0"}
        for alias, config in settings.CACHES.items()
    }
    response = client.get("/metrics")
    assert response.status_code == 200
    assert "triage_open_incidents" in response.content.decode()
    assert "triage_escalation_due_backlog" not in response.content.decode()


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_incidents_opened_and_acknowledged_by_any_process_are_counted(
    client: Client, redis: Any
) -> None:
    """A worker or a command opens and acknowledges incidents too, and only the
    web is scraped: the counts live in Redis, not in the process's memory."""
    script = (
        "from datetime import timedelta\n"
        "from django.utils import timezone\n"
        "from incidents.models import Service\n"
        "from incidents.services import acknowledge_incident, open_incident\n"
        "cron = Service.objects.create(name='Nightly jobs', slug='cron')\n"
        "opened = open_incident(service=cron, title='backup missed', severity='error',\n"
        "    source='heartbeat', now=timezone.now() - timedelta(seconds=90)).incident\n"
        "acknowledge_incident(opened, actor=None)\n"
    )
    subprocess.run(
        [str(BIN / "python"), "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=app_env(),
        check=True,
        capture_output=True,
    )
    IncidentFactory(source="api")
    body = client.get("/metrics").content.decode()
    assert 'triage_incidents_opened_total{source="heartbeat"} 1.0' in body
    assert 'triage_incidents_opened_total{source="api"} 1.0' in body
    assert 'triage_time_to_acknowledge_seconds_bucket{le="60.0"} 0.0' in body
    assert 'triage_time_to_acknowledge_seconds_bucket{le="120.0"} 1.0' in body
    assert "triage_time_to_acknowledge_seconds_count 1.0" in body


@pytest.mark.django_db(transaction=True)
def test_the_escalation_checks_queue_is_measured_beside_the_default_one(
    client: Client, redis: Any
) -> None:
    redis.lpush("escalation", "a", "b")
    body = client.get("/metrics").content.decode()
    assert 'triage_celery_queue_length{queue="escalation"} 2.0' in body
    assert 'triage_celery_queue_length{queue="celery"} 0.0' in body
