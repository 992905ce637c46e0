"""Alert rules (promtool), the runbook they link to, and the Grafana dashboard.

The dashboard's and the rules' queries may only use metric names that
triage's /metrics really exports: triage/metrics.py is the contract.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "triage"
RULES = CHART / "files" / "rules.yaml"
RULES_TESTS = CHART / "tests" / "rules_test.yaml"
DASHBOARD = CHART / "files" / "dashboard.json"
RUNBOOK = ROOT / "docs" / "runbook.md"

# Series that Prometheus itself makes, not triage.
PROMETHEUS_NATIVE = {"up"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: apt-get install prometheus (.ci/run does)"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return groups


def alerts() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def dashboard_queries() -> list[str]:
    return [target["expr"] for panel in dashboard_panels() for target in panel["targets"]]


def rule_queries() -> list[str]:
    return [rule["expr"] for group in rule_groups() for rule in group["rules"]]


# --- PromQL metric names -------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'")
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
_KEYWORDS |= {"group_left", "group_right", "inf", "nan", "Inf", "NaN"}


def metric_names(expr: str) -> set[str]:
    """Series names in a PromQL expression: not functions, labels, keywords or strings."""
    expr = _STRING.sub('""', expr)
    expr = _MATCHERS.sub("", expr)
    expr = _RANGES.sub("", expr)
    expr = _GROUPING.sub("", expr)
    names = set()
    for match in _IDENTIFIER.finditer(expr):
        if expr[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if match.group() not in _KEYWORDS:
            names.add(match.group())
    return names


def used_metric_names() -> set[str]:
    """Names the dashboard and the alert rules read that triage must export."""
    names = set().union(*map(metric_names, dashboard_queries() + rule_queries()))
    recorded = {
        rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule
    }
    return {name for name in names - PROMETHEUS_NATIVE if name not in recorded}


def exported_metric_names(client: Client) -> set[str]:
    body = client.get("/metrics").content.decode()
    return set(re.findall(r"^# (?:HELP|TYPE) ([A-Za-z_:][A-Za-z0-9_:]*)", body, re.MULTILINE))


def missing_from(exported: set[str], used: set[str]) -> set[str]:
    def is_exported(name: str) -> bool:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        return name in exported or base in exported

    return {name for name in used if not is_exported(name)}


def test_metric_names_are_told_apart_from_functions_labels_and_keywords() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(triage_x_seconds_bucket{le=~"5(\\\\.0)?",'
        ' namespace="$namespace"}[$__rate_interval]))) / on() group_left count(up{job="a"})'
        " > bool 0 and time() - max without (pod) (triage_heartbeat) unless absent(foo_total)"
    )
    assert metric_names(expr) == {"triage_x_seconds_bucket", "up", "triage_heartbeat", "foo_total"}


@pytest.mark.django_db
def test_dashboard_and_rules_use_only_metrics_the_app_exports(client: Client) -> None:
    missing = missing_from(exported_metric_names(client), used_metric_names())
    assert missing == set(), f"not exported by /metrics: {sorted(missing)}"


def test_every_recording_rule_an_alert_reads_is_defined() -> None:
    recorded = {
        rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule
    }
    read = {name for expr in rule_queries() for name in metric_names(expr) if ":" in name}
    assert read, "the SLO alerts read recording rules"
    assert read <= recorded


# --- rules ---------------------------------------------------------------------


def test_the_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_pass_their_promtool_unit_tests() -> None:
    result = promtool("test", "rules", str(RULES_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_both_firing_and_not_firing() -> None:
    cases = yaml.safe_load(RULES_TESTS.read_text())["tests"]
    firing, quiet = set(), set()
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {alert["alert"] for alert in alerts()}
    assert names - firing == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown staying quiet"


def github_anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_explains_itself_and_links_its_runbook_section() -> None:
    anchors = {
        github_anchor(line.lstrip("#"))
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    for alert in alerts():
        name = alert["alert"]
        annotations = alert["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, name
        assert alert["labels"]["severity"] in {"critical", "warning"}, name
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert page == "docs/runbook.md", name
        assert anchor == name.lower(), name
        assert anchor in anchors, f"docs/runbook.md has no section for {name}"


def test_slo_alerts_pair_a_long_and_a_short_window_at_each_burn_rate() -> None:
    fast = [("1h", "5m", "14.4"), ("6h", "30m", "6")]
    slow = [("1d", "2h", "3"), ("3d", "6h", "1")]
    expected = {
        "TriageWebErrorBudgetBurnFast": ("http_error_ratio", "0.001", fast),
        "TriageWebErrorBudgetBurnSlow": ("http_error_ratio", "0.001", slow),
        "TriageEscalationLatenessBudgetBurnFast": ("escalation_late_ratio", "0.01", fast),
        "TriageEscalationLatenessBudgetBurnSlow": ("escalation_late_ratio", "0.01", slow),
    }
    by_name = {alert["alert"]: alert["expr"] for alert in alerts()}
    for name, (ratio, budget, windows) in expected.items():
        for long, short, factor in windows:
            for window in (long, short):
                assert f"triage:{ratio}:rate{window} > ({factor} * {budget})" in by_name[name]


# --- dashboard -------------------------------------------------------------------


def test_the_dashboard_queries_prometheus_through_a_datasource_variable() -> None:
    board = dashboard()
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = dashboard_panels()
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_the_dashboard_shows_incidents_paging_escalation_web_and_queues() -> None:
    used = set().union(*map(metric_names, dashboard_queries()))
    assert {
        "triage_open_incidents",
        "triage_pages_total",
        "triage_time_to_acknowledge_seconds_bucket",
        "triage_escalation_lateness_seconds_bucket",
        "django_http_requests_total_by_method_total",
        "django_http_requests_latency_seconds_by_view_method_bucket",
        "django_http_responses_total_by_status_total",
        "triage_celery_queue_length",
    } <= used


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    grafana_variables = {"$__rate_interval": "5m", "$namespace": "triage"}
    rules = []
    for number, expr in enumerate(dashboard_queries()):
        for variable, value in grafana_variables.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"unknown Grafana variable in {expr}"
        rules.append({"record": f"dashboard:query:{number}", "expr": expr})
    path = tmp_path / "dashboard_queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
