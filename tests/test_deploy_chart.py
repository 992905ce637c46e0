"""The Helm chart, rendered by Helm's own engine, and the ArgoCD Application.

Every manifest is validated against the Kubernetes 1.33 schemas in strict
mode; the Prometheus Operator objects (not in those schemas) are checked
field by field.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from tests.processes import app_env, check_deploy
from tests.test_security import concrete, routes

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "triage"
ARGOCD = ROOT / "deploy" / "argocd"
KUBERNETES_VERSION = "1.33.0"
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
# The only writable place inside the containers (paths in the pod, not here).
POD_TMP = "/tmp"  # noqa: S108
POD_METRICS_DIR = f"{POD_TMP}/prometheus"

# The chart's defaults plus what it requires: an image and the secrets.
REQUIRED = {
    "image": {"repository": "ghcr.io/example/triage"},
    "secret": {
        "secretKey": "test-only-" + "x" * 50,
        "databaseUrl": "postgresql://triage:test-only@postgres:5432/triage",
        "redisUrl": "redis://redis:6379/0",
    },
}
PRODUCTION = yaml.safe_load((ARGOCD / "values-production.yaml").read_text())

Manifest = dict[str, Any]


def render(values: dict[str, Any]) -> dict[str, list[Manifest]]:
    """Template path -> the documents it rendered (templates that render nothing are left out)."""
    with helm_python.Chart.load(CHART) as chart:
        rendered = chart.render(values, name="triage", namespace="triage")
    documents: dict[str, list[Manifest]] = {}
    for path, text in rendered.items():
        if path.endswith("NOTES.txt") or not text.strip():
            continue
        docs = [doc for doc in yaml.safe_load_all(text) if doc]
        if docs:
            documents[path] = docs
    return documents


def manifests(values: dict[str, Any]) -> list[Manifest]:
    return [doc for docs in render(values).values() for doc in docs]


def one(docs: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = [
        doc
        for doc in docs
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def kinds(docs: list[Manifest]) -> list[str]:
    return sorted(doc["kind"] for doc in docs)


def with_values(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    values = copy.deepcopy(base)
    for dotted, value in changes.items():
        node = values
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return values


def pod_templates(docs: list[Manifest]) -> dict[str, dict[str, Any]]:
    return {
        doc["metadata"]["name"]: doc["spec"]["template"]["spec"]
        for doc in docs
        if doc["kind"] in {"Deployment", "Job"}
    }


def container(docs: list[Manifest], name: str) -> dict[str, Any]:
    spec = pod_templates(docs)[name]
    assert len(spec["containers"]) == 1
    return spec["containers"][0]


def env_of(container_spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container_spec.get("env", [])}


@pytest.fixture(scope="module")
def default_docs() -> list[Manifest]:
    return manifests(REQUIRED)


@pytest.fixture(scope="module")
def production_docs() -> list[Manifest]:
    return manifests(PRODUCTION)


# --- rendering and validity --------------------------------------------------


@pytest.mark.parametrize("values", [REQUIRED, PRODUCTION], ids=["defaults", "production"])
def test_the_chart_lints_without_warnings(values: dict[str, Any]) -> None:
    report = helm_python.lint(CHART, values=values, namespace="triage")
    assert report["errors"] == []
    problems = [message for message in report["messages"] if message["severity"] >= 2]
    assert problems == []


@pytest.mark.parametrize("values", [REQUIRED, PRODUCTION], ids=["defaults", "production"])
def test_every_rendered_manifest_is_valid_kubernetes(values: dict[str, Any]) -> None:
    invalid = []
    for doc in manifests(values):
        if doc["kind"] in OPERATOR_KINDS:
            continue  # not in the Kubernetes schemas: see the tests below
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            invalid.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert invalid == []


def test_default_values_render_the_core_objects_and_no_optional_ones(
    default_docs: list[Manifest],
) -> None:
    assert kinds(default_docs) == [
        "ConfigMap",
        "Deployment",
        "Deployment",
        "Deployment",
        "Job",
        "PodDisruptionBudget",
        "Secret",
        "Secret",
        "Service",
    ]


def test_production_values_render_ingress_autoscaling_policies_and_monitoring(
    production_docs: list[Manifest],
) -> None:
    assert kinds(production_docs) == [
        "ConfigMap",
        "ConfigMap",
        "Deployment",
        "Deployment",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Ingress",
        "Job",
        "NetworkPolicy",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "PrometheusRule",
        "Service",
        "ServiceMonitor",
    ]


# --- secrets -----------------------------------------------------------------


def test_the_default_values_hold_no_secret() -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert defaults["existingSecret"] == ""
    assert defaults["secret"] == {
        "secretKey": "",
        "databaseUrl": "",
        "redisUrl": "",
        "metricsToken": "",
    }


def test_rendering_without_any_secret_source_fails_with_a_clear_message() -> None:
    with pytest.raises(helm_python.HelmError) as failure:
        render({"image": {"repository": "ghcr.io/example/triage"}})
    message = str(failure.value)
    assert "set existingSecret to the name of a Secret with the keys SECRET_KEY" in message
    assert "missing: secret.secretKey, secret.databaseUrl, secret.redisUrl" in message


def test_rendering_with_only_some_secret_values_names_the_missing_ones() -> None:
    values = with_values(REQUIRED, secret__redisUrl="")
    with pytest.raises(helm_python.HelmError, match=r"missing: secret\.redisUrl\)"):
        render(values)


def test_rendering_without_an_image_repository_fails_with_a_clear_message() -> None:
    values = with_values(REQUIRED, image__repository="")
    with pytest.raises(helm_python.HelmError, match=r"image\.repository is required"):
        render(values)


def test_with_an_existing_secret_the_chart_creates_none_and_every_pod_reads_it(
    production_docs: list[Manifest],
) -> None:
    assert [doc for doc in production_docs if doc["kind"] == "Secret"] == []
    for name, spec in pod_templates(production_docs).items():
        sources = spec["containers"][0]["envFrom"]
        refs = [source["secretRef"]["name"] for source in sources if "secretRef" in source]
        assert refs == ["triage-secrets"], name


def test_the_chart_secret_carries_the_three_secret_settings(default_docs: list[Manifest]) -> None:
    secret = one(default_docs, "Secret", "triage")
    assert secret["stringData"] == {
        "SECRET_KEY": REQUIRED["secret"]["secretKey"],
        "DATABASE_URL": REQUIRED["secret"]["databaseUrl"],
        "REDIS_URL": REQUIRED["secret"]["redisUrl"],
    }
    config = one(default_docs, "ConfigMap", "triage")["data"]
    assert not {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"} & set(config)


# --- migrations hook ---------------------------------------------------------


def test_migrations_run_as_a_helm_and_argocd_hook_before_install_and_upgrade(
    default_docs: list[Manifest],
) -> None:
    job = one(default_docs, "Job", "triage-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    assert annotations["argocd.argoproj.io/hook"] == "PreSync"
    assert annotations["argocd.argoproj.io/hook-delete-policy"] == (
        "BeforeHookCreation,HookSucceeded"
    )
    migrate = container(default_docs, "triage-migrate")
    assert migrate["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_migrations_do_not_depend_on_objects_created_after_the_hook(
    default_docs: list[Manifest],
) -> None:
    """On a first install hooks run before the ConfigMap and the chart's Secret exist."""
    migrate = container(default_docs, "triage-migrate")
    assert [source for source in migrate["envFrom"] if "configMapRef" in source] == []
    inlined = {name: item["value"] for name, item in env_of(migrate).items()}
    assert inlined == one(default_docs, "ConfigMap", "triage")["data"]

    secret_name = migrate["envFrom"][0]["secretRef"]["name"]
    hook_secret = one(default_docs, "Secret", secret_name)
    annotations = hook_secret["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(annotations["helm.sh/hook-weight"]) < int(
        one(default_docs, "Job")["metadata"]["annotations"]["helm.sh/hook-weight"]
    )
    assert annotations["argocd.argoproj.io/hook"] == "PreSync"
    assert hook_secret["stringData"] == one(default_docs, "Secret", "triage")["stringData"]


def test_migrations_can_be_switched_off() -> None:
    docs = manifests(with_values(REQUIRED, migrations__enabled=False))
    assert [doc for doc in docs if doc["kind"] == "Job"] == []
    assert [doc["metadata"]["name"] for doc in docs if doc["kind"] == "Secret"] == ["triage"]


# --- processes ---------------------------------------------------------------


def test_web_worker_and_beat_run_the_images_commands(default_docs: list[Manifest]) -> None:
    assert container(default_docs, "triage-web")["command"] == [
        "gunicorn",
        "-c",
        "triage/gunicorn.conf.py",
        "triage.wsgi",
    ]
    assert container(default_docs, "triage-worker")["command"][:4] == [
        "celery",
        "-A",
        "triage",
        "worker",
    ]
    # Both queues the settings declare (tests/test_celery_queues.py).
    assert "--queues=escalation,celery" in container(default_docs, "triage-worker")["command"]
    assert container(default_docs, "triage-beat")["command"] == [
        "celery",
        "-A",
        "triage",
        "beat",
        "-s",
        f"{POD_TMP}/celerybeat-schedule",
    ]


@pytest.mark.parametrize("values", [REQUIRED, PRODUCTION], ids=["defaults", "production"])
def test_beat_runs_exactly_one_replica_and_is_replaced_not_rolled(
    values: dict[str, Any],
) -> None:
    beat = one(manifests(values), "Deployment", "triage-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    scaled = [
        doc["spec"]["scaleTargetRef"]["name"]
        for doc in manifests(values)
        if doc["kind"] == "HorizontalPodAutoscaler"
    ]
    assert "triage-beat" not in scaled


def test_beat_replicas_cannot_be_configured() -> None:
    values = with_values(REQUIRED, beat__replicas=2)
    with pytest.raises(helm_python.HelmValuesError):
        render(values)


def test_worker_shutdown_waits_longer_than_the_longest_task(default_docs: list[Manifest]) -> None:
    worker = pod_templates(default_docs)["triage-worker"]
    time_limit = int(one(default_docs, "ConfigMap", "triage")["data"]["CELERY_TASK_TIME_LIMIT"])
    assert worker["terminationGracePeriodSeconds"] > time_limit


# --- probes and hosts --------------------------------------------------------


def test_web_probes_liveness_on_healthz_and_readiness_on_readyz(
    default_docs: list[Manifest],
) -> None:
    web = container(default_docs, "triage-web")
    assert web["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert web["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert web["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert web["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    startup = web["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30


def test_web_accepts_its_pod_ip_as_host_for_probes_and_scrapes(
    production_docs: list[Manifest],
) -> None:
    """Kubelet and Prometheus send Host: <pod IP>:8000, which Django would refuse."""
    env = container(production_docs, "triage-web")["env"]
    names = [item["name"] for item in env]
    assert names.index("POD_IP") < names.index("ALLOWED_HOSTS"), "$(POD_IP) must be defined first"
    assert env[names.index("POD_IP")]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    hosts = env[names.index("ALLOWED_HOSTS")]["value"].split(",")
    assert hosts == ["triage.example.com", "localhost", "$(POD_IP)", "[$(POD_IP)]"]


def test_ingress_hosts_become_allowed_hosts_csrf_origins_and_the_base_url(
    production_docs: list[Manifest],
) -> None:
    config = one(production_docs, "ConfigMap", "triage")["data"]
    assert config["ALLOWED_HOSTS"] == "triage.example.com,localhost"
    assert config["CSRF_TRUSTED_ORIGINS"] == "https://triage.example.com"
    assert config["BASE_URL"] == "https://triage.example.com"
    ingress = one(production_docs, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "traefik"
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "triage.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    service = one(production_docs, "Service")
    assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def routed(ingress: Manifest, path: str) -> bool:
    """Whether any rule sends `path` to triage, the way Kubernetes defines path types."""
    for rule in ingress["spec"]["rules"]:
        for entry in rule["http"]["paths"]:
            prefix = entry["path"].rstrip("/")
            if entry["pathType"] == "Exact" and path == entry["path"]:
                return True
            if entry["pathType"] == "Prefix" and (path == prefix or path.startswith(prefix + "/")):
                return True
    return False


def test_the_ingress_routes_every_page_but_not_metrics(production_docs: list[Manifest]) -> None:
    ingress = one(production_docs, "Ingress")
    pages = [concrete(route) for route in routes() if route != "metrics"]
    assert [page for page in pages if not routed(ingress, page)] == []
    assert routed(ingress, "/static/triage.css")
    assert routed(ingress, "/favicon.ico")  # served by WhiteNoise, not a URL route
    for path in ("/metrics", "/metrics/", "/metrics/x"):
        assert not routed(ingress, path)
    # Traefik matches Prefix paths as plain string prefixes: none may start /metrics.
    prefixes = [p["path"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]]
    assert not [p for p in prefixes if p != "/" and "/metrics".startswith(p)]


def test_behind_the_ingress_rate_limits_see_the_clients_address(
    default_docs: list[Manifest], production_docs: list[Manifest]
) -> None:
    assert one(default_docs, "ConfigMap", "triage")["data"]["TRUSTED_PROXIES"] == "0"
    assert one(production_docs, "ConfigMap", "triage")["data"]["TRUSTED_PROXIES"] == "1"
    two = manifests(with_values(PRODUCTION, config__trustedProxies=2))
    assert one(two, "ConfigMap", "triage")["data"]["TRUSTED_PROXIES"] == "2"


def test_the_outbound_policy_settings_reach_every_pod(default_docs: list[Manifest]) -> None:
    config = one(default_docs, "ConfigMap", "triage")["data"]
    assert config["OUTBOUND_ALLOW"] == ""
    assert "OUTBOUND_SCHEMES" not in config, "empty: triage's own default list"
    lan = manifests(
        with_values(
            REQUIRED,
            config__outboundAllow=["ntfy.home.lan", "192.168.1.0/24"],
            config__outboundSchemes=["ntfy", "ntfys"],
        )
    )
    config = one(lan, "ConfigMap", "triage")["data"]
    assert config["OUTBOUND_ALLOW"] == "ntfy.home.lan,192.168.1.0/24"
    assert config["OUTBOUND_SCHEMES"] == "ntfy,ntfys"
    with pytest.raises(helm_python.HelmValuesError):
        render(with_values(REQUIRED, config__outboundAllow=["ntfy.lan,10.0.0.0/8 ; rm"]))


def test_ingress_without_hosts_fails_with_a_clear_message() -> None:
    values = with_values(REQUIRED, ingress__enabled=True)
    with pytest.raises(helm_python.HelmError, match=r"ingress\.hosts is empty"):
        render(values)


def test_the_configmap_carries_the_non_secret_settings(default_docs: list[Manifest]) -> None:
    config = one(default_docs, "ConfigMap", "triage")["data"]
    assert config["LOG_FORMAT"] == "json"
    assert config["DEBUG"] == "false"
    assert config["PROMETHEUS_MULTIPROC_DIR"] == POD_METRICS_DIR
    assert config["HOME"] == POD_TMP, "gunicorn's control socket lives under $HOME"
    assert {"ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "TIME_ZONE", "LOG_LEVEL"} <= set(config)
    assert "BASE_URL" not in config, "an empty BASE_URL would override the app's default"
    for name in ("triage-web", "triage-worker", "triage-beat"):
        assert container(default_docs, name)["envFrom"] == [
            {"configMapRef": {"name": "triage"}},
            {"secretRef": {"name": "triage"}},
        ], name


def test_the_lifetime_of_notification_links_is_a_chart_value() -> None:
    default = one(manifests(REQUIRED), "ConfigMap", "triage")["data"]
    assert default["ACTION_LINK_MAX_AGE"] == "86400"
    shorter = with_values(REQUIRED, config__actionLinkMaxAge=3600)
    assert one(manifests(shorter), "ConfigMap", "triage")["data"]["ACTION_LINK_MAX_AGE"] == "3600"
    with pytest.raises(helm_python.HelmValuesError):
        render(with_values(REQUIRED, config__actionLinkMaxAge=10))


@pytest.mark.subprocess
def test_django_finds_nothing_to_warn_about_in_the_production_settings(
    production_docs: list[Manifest],
) -> None:
    """``manage.py check --deploy`` against exactly what the production
    ConfigMap sets (the Secret's three values stand in as the Secret would)."""
    config = one(production_docs, "ConfigMap", "triage")["data"]
    env = app_env(**config, SECRET_KEY="a-long-random-production-secret-" + "k" * 40)
    env.pop("PROMETHEUS_MULTIPROC_DIR")  # a folder inside the pod
    result = check_deploy(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_changing_a_setting_rolls_the_pods() -> None:
    before = one(manifests(REQUIRED), "Deployment", "triage-worker")
    after = one(
        manifests(with_values(REQUIRED, config__logLevel="debug")), "Deployment", "triage-worker"
    )
    key = "checksum/config"
    assert (
        before["spec"]["template"]["metadata"]["annotations"][key]
        != after["spec"]["template"]["metadata"]["annotations"][key]
    )


# --- security ----------------------------------------------------------------


@pytest.mark.parametrize("values", [REQUIRED, PRODUCTION], ids=["defaults", "production"])
def test_every_pod_runs_as_non_root_on_a_read_only_filesystem_without_privileges(
    values: dict[str, Any],
) -> None:
    pods = pod_templates(manifests(values))
    assert set(pods) == {"triage-web", "triage-worker", "triage-beat", "triage-migrate"}
    for name, spec in pods.items():
        pod_context = spec["securityContext"]
        assert pod_context["runAsNonRoot"] is True, name
        assert pod_context["runAsUser"] == 10001, name
        assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        for item in spec["containers"]:
            context = item["securityContext"]
            assert context["runAsNonRoot"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
            mounts = {mount["mountPath"]: mount["name"] for mount in item["volumeMounts"]}
            assert "emptyDir" in volumes[mounts[POD_TMP]], name
            assert "emptyDir" in volumes[mounts[POD_METRICS_DIR]], name
            assert item["resources"]["requests"], name
            assert item["resources"]["limits"], name


def test_running_as_root_is_refused_by_the_values_schema() -> None:
    values = with_values(REQUIRED, securityContext={"runAsNonRoot": False})
    with pytest.raises(helm_python.HelmValuesError):
        render(values)


# --- availability and scaling -------------------------------------------------


def test_web_keeps_a_pod_through_disruptions_and_rolls_without_losing_capacity(
    default_docs: list[Manifest],
) -> None:
    web = one(default_docs, "Deployment", "triage-web")
    assert web["spec"]["replicas"] == 2
    assert web["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    budget = one(default_docs, "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"] == web["spec"]["selector"]["matchLabels"]


def test_autoscaling_hands_the_web_replica_count_to_the_hpa(
    production_docs: list[Manifest],
) -> None:
    web = one(production_docs, "Deployment", "triage-web")
    assert "replicas" not in web["spec"]
    hpa = one(production_docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "triage-web",
    }
    assert hpa["spec"]["minReplicas"] >= 2


def test_network_policies_admit_only_the_ingress_controller_and_prometheus_to_the_web(
    production_docs: list[Manifest],
) -> None:
    policies = {
        doc["metadata"]["name"]: doc["spec"]
        for doc in production_docs
        if doc["kind"] == "NetworkPolicy"
    }
    web = policies["triage-web"]
    assert web["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "web"
    [rule] = web["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    namespaces = [peer["namespaceSelector"]["matchLabels"] for peer in rule["from"]]
    assert {"kubernetes.io/metadata.name": "kube-system"} in namespaces
    assert {"kubernetes.io/metadata.name": "monitoring"} in namespaces
    background = policies["triage-background"]
    assert background["policyTypes"] == ["Ingress"]
    assert "ingress" not in background, "worker and beat accept no connections"
    assert background["podSelector"]["matchExpressions"][0]["values"] == [
        "worker",
        "beat",
        "migrations",
    ]


def test_restricting_egress_still_allows_dns_and_adds_the_listed_rules() -> None:
    database = {"to": [{"ipBlock": {"cidr": "10.0.0.5/32"}}], "ports": [{"port": 5432}]}
    values = with_values(PRODUCTION, networkPolicy__egress=[database])
    for policy in [doc for doc in manifests(values) if doc["kind"] == "NetworkPolicy"]:
        assert "Egress" in policy["spec"]["policyTypes"]
        dns, listed = policy["spec"]["egress"]
        assert {"port": 53, "protocol": "UDP"} in dns["ports"]
        assert listed == database


# --- Prometheus Operator objects and the dashboard ----------------------------


def test_service_monitor_scrapes_the_web_metrics_as_job_triage_web(
    production_docs: list[Manifest],
) -> None:
    monitor = one(production_docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    service = one(production_docs, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["triage"]}
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert endpoint["relabelings"] == [
        {"action": "replace", "targetLabel": "job", "replacement": "triage-web"}
    ]
    assert set(endpoint) <= {
        "port",
        "path",
        "interval",
        "scrapeTimeout",
        "relabelings",
        "authorization",
    }


# The prometheus-operator's SafeAuthorization: a Secret key in the monitor's namespace.
def bearer_from(secret: str) -> dict[str, Any]:
    return {"type": "Bearer", "credentials": {"name": secret, "key": "METRICS_TOKEN"}}


def test_production_scrapes_with_the_metrics_token_of_the_existing_secret(
    production_docs: list[Manifest],
) -> None:
    [endpoint] = one(production_docs, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["authorization"] == bearer_from("triage-secrets")


def test_a_metrics_token_value_goes_into_the_chart_secret_and_the_service_monitor() -> None:
    token = "test-only-" + "m" * 40
    docs = manifests(
        with_values(REQUIRED, secret__metricsToken=token, metrics__serviceMonitor__enabled=True)
    )
    assert one(docs, "Secret", "triage")["stringData"]["METRICS_TOKEN"] == token
    [endpoint] = one(docs, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["authorization"] == bearer_from("triage")


def test_without_a_metrics_token_the_service_monitor_sends_none() -> None:
    docs = manifests(with_values(REQUIRED, metrics__serviceMonitor__enabled=True))
    assert "METRICS_TOKEN" not in one(docs, "Secret", "triage")["stringData"]
    [endpoint] = one(docs, "ServiceMonitor")["spec"]["endpoints"]
    assert "authorization" not in endpoint


def test_asking_for_a_metrics_token_without_giving_one_fails_clearly() -> None:
    values = with_values(REQUIRED, metrics__bearerToken=True)
    with pytest.raises(helm_python.HelmError, match=r"set secret\.metricsToken"):
        render(values)


def test_prometheus_rule_embeds_the_rules_file_with_absolute_runbook_links(
    production_docs: list[Manifest],
) -> None:
    rule = one(production_docs, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule["spec"]) == {"groups"}
    source = yaml.safe_load((CHART / "files" / "rules.yaml").read_text())["groups"]
    base = PRODUCTION["metrics"]["prometheusRule"]["runbookBaseUrl"]
    alerts = 0
    for embedded, original in zip(rule["spec"]["groups"], source, strict=True):
        assert set(embedded) == {"name", "rules"}
        for embedded_rule, original_rule in zip(embedded["rules"], original["rules"], strict=True):
            assert set(embedded_rule) <= {"record", "alert", "expr", "for", "labels", "annotations"}
            assert embedded_rule["expr"] == original_rule["expr"]
            if "alert" in embedded_rule:
                alerts += 1
                url = embedded_rule["annotations"]["runbook_url"]
                assert url == f"{base}/{original_rule['annotations']['runbook_url']}"
    assert alerts == 11


def test_grafana_dashboard_configmap_carries_the_sidecar_label_and_the_dashboard(
    production_docs: list[Manifest],
) -> None:
    dashboard = one(production_docs, "ConfigMap", "triage-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "triage"}
    assert json.loads(dashboard["data"]["triage.json"]) == json.loads(
        (CHART / "files" / "dashboard.json").read_text()
    )


def test_the_dashboard_can_go_to_the_namespace_grafana_watches() -> None:
    values = with_values(PRODUCTION, metrics__grafanaDashboard__namespace="monitoring")
    dashboard = one(manifests(values), "ConfigMap", "triage-dashboard")
    assert dashboard["metadata"]["namespace"] == "monitoring"


# --- ArgoCD --------------------------------------------------------------------


def test_argocd_application_syncs_the_chart_automatically_with_production_values() -> None:
    application = yaml.safe_load((ARGOCD / "application.yaml").read_text())
    assert application["apiVersion"] == "argoproj.io/v1alpha1"
    assert application["kind"] == "Application"
    spec = application["spec"]
    assert spec["source"]["path"] == "deploy/helm/triage"
    for value_file in spec["source"]["helm"]["valueFiles"]:
        resolved = (ROOT / spec["source"]["path"] / value_file).resolve()
        assert resolved == (ARGOCD / "values-production.yaml").resolve()
        assert resolved.is_relative_to(ROOT), "ArgoCD refuses value files outside the repository"
    assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert spec["syncPolicy"]["syncOptions"] == ["CreateNamespace=true"]
    assert spec["destination"]["namespace"] == "triage"


def test_production_values_take_secrets_from_an_existing_secret_only() -> None:
    assert PRODUCTION["existingSecret"] == "triage-secrets"
    assert "secret" not in PRODUCTION
    text = (ARGOCD / "values-production.yaml").read_text()
    assert "postgresql://" not in text
    assert "redis://" not in text


# --- chat (Slack, Mattermost) --------------------------------------------------

CHAT_SECRETS = {
    "slackSigningSecret": "test-only-signing-secret",
    "slackBotToken": "xoxb-test-only",
    "mattermostBotToken": "",
    "mattermostCommandToken": "",
}


def test_chat_is_off_by_default_and_holds_no_secret(default_docs: list[Manifest]) -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert defaults["chat"]["existingSecret"] == ""
    assert set(defaults["chat"]["secret"].values()) == {""}
    assert sorted(d["metadata"]["name"] for d in default_docs if d["kind"] == "Secret") == [
        "triage",
        "triage-migrate",
    ]
    config = one(default_docs, "ConfigMap", "triage")["data"]
    assert config["SLACK_API_URL"] == "https://slack.com/api/"
    assert "MATTERMOST_URL" not in config


def test_chat_secrets_get_a_secret_every_long_running_pod_reads() -> None:
    values = with_values(
        REQUIRED, chat__secret=CHAT_SECRETS, chat__mattermostUrl="https://chat.example.org"
    )
    docs = manifests(values)
    secret = one(docs, "Secret", "triage-chat")
    for doc in docs:
        if doc["kind"] not in OPERATOR_KINDS:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert report_errors(values) == []
    # Only the secrets given: an empty key would shadow one set by _FILE.
    assert secret["stringData"] == {
        "SLACK_SIGNING_SECRET": "test-only-signing-secret",
        "SLACK_BOT_TOKEN": "xoxb-test-only",
    }
    assert one(docs, "ConfigMap", "triage")["data"]["MATTERMOST_URL"] == "https://chat.example.org"
    for name in ("triage-web", "triage-worker", "triage-beat"):
        assert container(docs, name)["envFrom"][-1] == {"secretRef": {"name": "triage-chat"}}
    key = "checksum/chat-secret"
    rotated = with_values(values, chat__secret={**CHAT_SECRETS, "slackBotToken": "xoxb-new"})
    before = one(docs, "Deployment", "triage-worker")["spec"]["template"]["metadata"]
    after = one(manifests(rotated), "Deployment", "triage-worker")["spec"]["template"]["metadata"]
    assert before["annotations"][key] != after["annotations"][key]


def test_chat_secrets_can_come_from_an_existing_secret() -> None:
    values = with_values(REQUIRED, chat__existingSecret="chat-tokens", chat__secret=CHAT_SECRETS)
    docs = manifests(values)
    assert sorted(d["metadata"]["name"] for d in docs if d["kind"] == "Secret") == [
        "triage",
        "triage-migrate",
    ]
    for name in ("triage-web", "triage-worker", "triage-beat"):
        assert container(docs, name)["envFrom"][-1] == {"secretRef": {"name": "chat-tokens"}}
    assert report_errors(values) == []


def report_errors(values: dict[str, Any]) -> list[Any]:
    report = helm_python.lint(CHART, values=values, namespace="triage")
    return [m for m in report["messages"] if m["severity"] >= 2] + list(report["errors"])


def test_a_mattermost_url_without_a_scheme_is_refused_by_the_values_schema() -> None:
    with pytest.raises(helm_python.HelmValuesError):
        render(with_values(REQUIRED, chat__mattermostUrl="chat.example.org"))


# --- signing in with OpenID Connect ---------------------------------------------

OIDC = {
    "issuer": "https://sso.example.org/realms/main",
    "clientId": "triage",
    "providerName": "Keycloak",
    "staffGroup": "triage-admins",
}


def test_oidc_is_off_by_default_and_holds_no_secret(default_docs: list[Manifest]) -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["oidc"]
    assert (defaults["issuer"], defaults["clientSecret"], defaults["existingSecret"]) == (
        "",
        "",
        "",
    )
    config = one(default_docs, "ConfigMap", "triage")["data"]
    assert [name for name in config if name.startswith("OIDC_")] == []
    assert not [d for d in default_docs if d["metadata"]["name"] == "triage-oidc"]


def test_oidc_settings_reach_every_long_running_pod_and_the_secret_its_own_secret() -> None:
    values = with_values(REQUIRED, oidc={**OIDC, "clientSecret": "test-only-client-secret"})
    docs = manifests(values)
    for doc in docs:
        if doc["kind"] not in OPERATOR_KINDS:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert report_errors(values) == []
    config = one(docs, "ConfigMap", "triage")["data"]
    assert {name: value for name, value in config.items() if name.startswith("OIDC_")} == {
        "OIDC_ISSUER": "https://sso.example.org/realms/main",
        "OIDC_CLIENT_ID": "triage",
        "OIDC_PROVIDER_NAME": "Keycloak",
        "OIDC_SCOPES": "openid email profile",
        "OIDC_GROUPS_CLAIM": "groups",
        "OIDC_STAFF_GROUP": "triage-admins",
        "OIDC_PASSWORD_LOGIN": "true",
    }
    assert "test-only-client-secret" not in json.dumps(config)
    secret = one(docs, "Secret", "triage-oidc")
    assert secret["stringData"] == {"OIDC_CLIENT_SECRET": "test-only-client-secret"}
    for name in ("triage-web", "triage-worker", "triage-beat"):
        assert container(docs, name)["envFrom"][-1] == {"secretRef": {"name": "triage-oidc"}}
    # The migrations hook runs without them: it signs nobody in.
    migrate = container(docs, "triage-migrate")
    assert not [name for name in env_of(migrate) if name.startswith("OIDC_")]
    rotated = manifests(with_values(values, oidc__clientSecret="rotated"))
    key = "checksum/oidc-secret"
    before = one(docs, "Deployment", "triage-web")["spec"]["template"]["metadata"]
    after = one(rotated, "Deployment", "triage-web")["spec"]["template"]["metadata"]
    assert before["annotations"][key] != after["annotations"][key]
    assert (
        before["annotations"]["checksum/config"]
        != (
            one(manifests(REQUIRED), "Deployment", "triage-web")["spec"]["template"]["metadata"][
                "annotations"
            ]["checksum/config"]
        )
    ), "turning OIDC on rolls the pods"


def test_the_oidc_client_secret_can_come_from_an_existing_secret() -> None:
    values = with_values(
        REQUIRED, oidc={**OIDC, "existingSecret": "sso-client", "clientSecret": "ignored"}
    )
    docs = manifests(values)
    assert not [d for d in docs if d["metadata"]["name"] == "triage-oidc"]
    for name in ("triage-web", "triage-worker", "triage-beat"):
        assert container(docs, name)["envFrom"][-1] == {"secretRef": {"name": "sso-client"}}
    # Or from the main existingSecret, which every pod reads already.
    production = manifests(with_values(PRODUCTION, oidc=OIDC))
    assert container(production, "triage-web")["envFrom"][-1] == {
        "secretRef": {"name": "triage-secrets"}
    }
    config = one(production, "ConfigMap", "triage")["data"]
    assert config["OIDC_ISSUER"] == OIDC["issuer"]


def test_password_login_can_be_turned_off_only_with_a_provider() -> None:
    values = with_values(
        REQUIRED, oidc={**OIDC, "clientSecret": "test-only", "passwordLogin": False}
    )
    assert one(manifests(values), "ConfigMap", "triage")["data"]["OIDC_PASSWORD_LOGIN"] == "false"
    with pytest.raises(helm_python.HelmError, match=r"only superusers could log in"):
        render(with_values(REQUIRED, oidc__passwordLogin=False))


@pytest.mark.parametrize(
    ("oidc", "message"),
    [
        ({"issuer": OIDC["issuer"], "clientSecret": "x"}, r"set oidc\.clientId"),
        ({"issuer": OIDC["issuer"], "clientId": "triage"}, r"give the client secret"),
    ],
)
def test_an_oidc_issuer_without_its_client_fails_with_a_clear_message(
    oidc: dict[str, str], message: str
) -> None:
    with pytest.raises(helm_python.HelmError, match=message):
        render(with_values(REQUIRED, oidc=oidc))


@pytest.mark.parametrize(
    "bad",
    [
        {"issuer": "sso.example.org"},
        {"scopes": "email profile"},
        {"passwordLogin": "no"},
        {"clientSecrets": "typo"},
    ],
    ids=str,
)
def test_oidc_values_the_app_would_refuse_are_refused_by_the_values_schema(
    bad: dict[str, Any],
) -> None:
    with pytest.raises(helm_python.HelmValuesError):
        render(with_values(REQUIRED, oidc={**OIDC, "clientSecret": "x", **bad}))


@pytest.mark.subprocess
def test_django_finds_nothing_to_warn_about_with_the_oidc_settings_the_chart_renders() -> None:
    values = with_values(PRODUCTION, oidc={**OIDC, "passwordLogin": False})
    config = one(manifests(values), "ConfigMap", "triage")["data"]
    env = app_env(
        **config,
        SECRET_KEY="a-long-random-production-secret-" + "k" * 40,
        OIDC_CLIENT_SECRET="test-only",
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR")
    result = check_deploy(env)
    assert result.returncode == 0, result.stdout + result.stderr
