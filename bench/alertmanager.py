"""One large Alertmanager notification, applied in-process.

An alert storm reaches triage as a few big notifications: Alertmanager sends
every alert of a group in one webhook (up to 5,000 here, `MAX_ALERTS`). With
per-alert grouping (the integration's "fingerprint" mode) each alert is its own
incident, so one notification opens, joins or resolves thousands of them.

The figure is the time `integrations.services.ingest_alertmanager` takes for
a notification already parsed, commit and after-commit work included, with
the number of SQL statements it ran. The service has no escalation policy
(as in `bench/ingest.py`): what is measured is applying the alerts, not
paging thousands of people. Each figure uses a service of its own.

1. N new alerts (N = 1,000 and 5,000): N incidents opened.
2. The same 5,000 alerts again: every one joins its open incident.
3. The 5,000 alerts resolved: every incident resolves.

    python -m triage.devstack bench bench/alertmanager.py
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from common import Figure, print_table, setup_django

TARGET_SECONDS = 3.0


def _alert(n: int, status: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": "InstanceDown",
            "instance": f"node-{n}.example:9100",
            "job": "node",
            "severity": "critical" if n % 10 == 0 else "warning",
        },
        "annotations": {
            "summary": f"node-{n} is down",
            "description": f"node-{n}.example:9100 has not answered a scrape for 5 minutes.",
        },
        "startsAt": "2026-11-30T01:00:00.000Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-30T01:20:00.000Z",
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up+%3D%3D+0",
        "fingerprint": f"{n:016x}",
    }


def _notification(count: int, status: str) -> Any:
    from integrations.payloads import parse_alertmanager

    body = {
        "version": "4",
        "groupKey": '{}:{alertname="InstanceDown"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "triage",
        "groupLabels": {"alertname": "InstanceDown"},
        "commonLabels": {"alertname": "InstanceDown", "job": "node"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [_alert(n, status) for n in range(count)],
    }
    notification = parse_alertmanager(body, need_group_key=False, grafana=False)
    assert not isinstance(notification, list), notification
    return notification


@contextmanager
def _counting() -> Iterator[list[int]]:
    from django.db import connection

    count = [0]

    def wrapper(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        count[0] += 1
        return execute(sql, *args)

    with connection.execute_wrapper(wrapper):
        yield count


def _integration(name: str) -> Any:
    from incidents.models import Service
    from integrations.keys import create_integration

    # Storm protection off: this measures each alert opening its own incident
    # (bench/storm.py measures storms).
    service = Service.objects.create(name=f"Storm {name}", slug=f"storm-{name}", storm_threshold=0)
    return create_integration(
        service=service, kind="alertmanager", name=name, grouping="fingerprint"
    ).integration


def _apply(integration: Any, notification: Any) -> tuple[float, int, dict[str, int]]:
    from integrations.services import ingest_alertmanager

    with _counting() as statements:
        started, cpu = time.perf_counter(), time.process_time()
        outcomes = ingest_alertmanager(integration, notification)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    actions: dict[str, int] = {}
    for outcome in outcomes:
        actions[outcome.action] = actions.get(outcome.action, 0) + 1
    CPU.append(cpu)
    return elapsed, statements[0], actions


# CPU seconds triage's own process spent on each figure (PostgreSQL's are
# not counted): steadier than wall time on a shared machine.
CPU: list[float] = []


def run() -> list[Figure]:
    setup_django()
    from incidents.models import Incident

    figures: list[Figure] = []
    for count in (1_000, 5_000):
        integration = _integration(f"new-{count}-{time.monotonic_ns()}")
        seconds, statements, actions = _apply(integration, _notification(count, "firing"))
        assert actions == {"opened": count}, actions
        target = f"<= {TARGET_SECONDS:g} s" if count == 5_000 else "-"
        figures += [
            Figure(
                f"Alertmanager: one {count:,}-alert notification, all new",
                seconds,
                "s",
                target,
                seconds <= TARGET_SECONDS if count == 5_000 else None,
            ),
            Figure("  CPU time in triage's process", CPU[-1], "s", "-"),
            Figure(f"  SQL statements ({count:,} incidents opened)", statements, "stmts", "-"),
        ]
    # The 5,000 again, then resolved, on the last integration.
    seconds, statements, actions = _apply(integration, _notification(5_000, "firing"))
    assert actions == {"joined": 5_000}, actions
    figures.append(Figure("Alertmanager: the same 5,000 again (all join)", seconds, "s", "-"))
    figures.append(Figure("  CPU time in triage's process", CPU[-1], "s", "-"))
    figures.append(Figure("  SQL statements for it", statements, "stmts", "-"))
    seconds, statements, actions = _apply(integration, _notification(5_000, "resolved"))
    assert actions == {"resolved": 5_000}, actions
    assert not Incident.objects.filter(service=integration.service, status="triggered").exists()
    figures.append(Figure("Alertmanager: the 5,000 resolved (all resolve)", seconds, "s", "-"))
    figures.append(Figure("  CPU time in triage's process", CPU[-1], "s", "-"))
    figures.append(Figure("  SQL statements for it", statements, "stmts", "-"))
    return figures


if __name__ == "__main__":
    print_table("alertmanager", run())
