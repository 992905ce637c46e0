"""The GitHub Actions workflows: actionlint (with ShellCheck) and what they do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent


def workflow(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as the boolean true.
    loaded["on"] = loaded.pop(True)
    return loaded


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in job["steps"] if step.get("uses", "").startswith(f"{action}@")]


def run_script(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_the_workflows_pass_actionlint_and_shellcheck() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [path.name for path in files] == ["ci.yml", "release.yml"]
    result = subprocess.run(
        [str(BIN / "actionlint"), "-no-color", "-shellcheck", str(BIN / "shellcheck")]
        + [str(path) for path in files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_ci_runs_make_test_on_pushes_and_pull_requests_against_real_services() -> None:
    ci = workflow("ci.yml")
    assert {"push", "pull_request", "workflow_call"} <= set(ci["on"])
    [job] = ci["jobs"].values()
    services = job["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert "--health-cmd" in services["postgres"]["options"]
    env = job["env"]
    assert env["TEST_DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in env["TEST_DATABASE_URL"]
    assert env["TEST_REDIS_URL"] == "redis://redis:6379/0"
    script = run_script(job)
    assert "apt-get install" in script
    for package in ("chromium", "prometheus", "prometheus-alertmanager"):
        assert f" {package}" in script
    assert job["steps"][-1]["run"].strip() == "make test"
    assert job["timeout-minutes"] <= 90


def test_release_runs_on_version_tags_after_the_tests() -> None:
    release = workflow("release.yml")
    assert release["on"] == {"push": {"tags": ["v*"]}}
    jobs = release["jobs"]
    assert jobs["test"]["uses"] == "./.github/workflows/ci.yml"
    assert jobs["image"]["needs"] == "test"
    assert jobs["chart"]["needs"] == "image"
    for name in ("image", "chart"):
        assert jobs[name]["permissions"] == {"contents": "read", "packages": "write"}


def test_release_pushes_the_image_to_ghcr_tagged_with_the_git_tag() -> None:
    job = workflow("release.yml")["jobs"]["image"]
    [meta] = steps_using(job, "docker/metadata-action")
    assert meta["with"]["images"] == "ghcr.io/${{ github.repository_owner }}/triage"
    assert meta["with"]["tags"].split() == ["type=ref,event=tag"]
    [login] = steps_using(job, "docker/login-action")
    assert login["with"]["registry"] == "ghcr.io"
    [build] = steps_using(job, "docker/build-push-action")
    assert build["with"]["push"] is True
    assert build["with"]["context"] == "."
    assert build["with"]["tags"] == f"${{{{ steps.{meta['id']}.outputs.tags }}}}"


def test_release_pushes_the_chart_to_ghcr_as_oci_versioned_by_the_tag() -> None:
    script = run_script(workflow("release.yml")["jobs"]["chart"])
    assert 'version="${tag#v}"' in script
    assert 'helm package deploy/helm/triage --version "${version}" --app-version "${tag}"' in script
    assert "helm registry login ghcr.io" in script
    assert 'helm push "dist/triage-${version}.tgz" "oci://ghcr.io/${owner}/charts"' in script
