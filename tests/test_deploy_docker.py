"""The Dockerfile: hadolint, its structure, and its commands run for real.

There is no Docker engine on these machines, so the image is not built here;
the default command and the HEALTHCHECK are run against this checkout instead.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
BIN = Path(sys.executable).parent

Instruction = tuple[str, str]


def instructions() -> list[Instruction]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        logical.append(pending)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation line"
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def stages() -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def exec_form(arguments: str) -> list[str]:
    parsed: list[str] = json.loads(arguments)
    return parsed


def healthcheck_command() -> list[str]:
    [arguments] = [args for name, args in instructions() if name == "HEALTHCHECK"]
    return exec_form(arguments[arguments.index("CMD") + len("CMD") :].strip())


def test_the_dockerfile_passes_hadolint_with_no_findings() -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_every_hadolint_exception_says_why() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore" in line:
            reason = lines[number - 1].strip() if number else ""
            assert reason.startswith("#"), f"line {number + 1}: say why above the ignore"
            assert "hadolint" not in reason, f"line {number + 1}: say why above the ignore"


def test_dependencies_are_built_in_a_builder_stage_and_copied_into_a_slim_one() -> None:
    builder, runtime = stages()
    assert builder[0][1].endswith(" AS builder")
    assert any("pip install --no-cache-dir -r" in args for name, args in builder if name == "RUN")
    base = runtime[0][1].split()[0]
    assert base.startswith("python:")
    assert "-slim" in base
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in runtime
    runs = " ".join(args for name, args in runtime if name == "RUN")
    for compiler in ("gcc", "build-essential", "apt-get install"):
        assert compiler not in runs


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    runtime = stages()[-1]
    uid = next(args.split("=")[1] for name, args in runtime if name == "ARG" and "APP_UID=" in args)
    [user] = [args for name, args in runtime if name == "USER"]
    resolved = user.replace("${APP_UID}", uid)
    assert re.fullmatch(r"[0-9]+:[0-9]+", resolved)
    assert resolved.split(":")[0] != "0"
    order = [name for name, _ in runtime]
    assert order.index("USER") < order.index("CMD"), "the command runs as that user"


def test_static_files_are_collected_at_build_with_throwaway_settings_only() -> None:
    runtime = stages()[-1]
    [collect] = [args for name, args in runtime if name == "RUN" and "collectstatic" in args]
    assert collect.split()[:3] == [
        "SECRET_KEY=build-only-not-secret",
        "DATABASE_URL=postgresql://build@localhost/build",
        "REDIS_URL=redis://localhost:6379/0",
    ]
    assert "manage.py collectstatic --noinput" in collect
    persistent = " ".join(args for name, args in runtime if name in {"ENV", "ARG"})
    for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL"):
        assert name not in persistent, f"{name} must not stay in the image"


def test_the_image_serves_the_web_by_default_with_writable_paths_under_tmp() -> None:
    runtime = stages()[-1]
    [command] = [args for name, args in runtime if name == "CMD"]
    assert exec_form(command) == ["gunicorn", "-c", "triage/gunicorn.conf.py", "triage.wsgi"]
    env = " ".join(args for name, args in runtime if name == "ENV")
    assert "HOME=/tmp" in env, "gunicorn's control socket goes under $HOME"
    assert "PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus" in env
    assert ("EXPOSE", "8000") in runtime


def test_the_healthcheck_asks_healthz_with_python_not_curl() -> None:
    [arguments] = [args for name, args in instructions() if name == "HEALTHCHECK"]
    command = healthcheck_command()
    assert command[:2] == ["python", "-c"]
    assert "urllib.request" in command[2]
    assert "/healthz" in command[2]
    assert "curl" not in arguments
    assert "--timeout=" in arguments


def test_the_build_context_leaves_out_the_repository_clutter_but_not_the_app() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: index + 1]) for index in range(len(parts))]
        return any(
            fnmatch.fnmatch(prefix, pattern.removeprefix("**/"))
            or fnmatch.fnmatch(parts[-1], pattern.removeprefix("**/"))
            for pattern in patterns
            for prefix in prefixes
        )

    for clutter in (".git/config", ".venv/bin/python", ".triage/pg", "tests/conftest.py"):
        assert ignored(clutter), clutter
    for clutter in ("triage/__pycache__/settings.cpython-312.pyc", "staticfiles/app.css"):
        assert ignored(clutter), clutter
    needed = ["manage.py", "requirements/base.txt", "triage/settings.py", "triage/gunicorn.conf.py"]
    needed += ["incidents/apps.py", "paging/apps.py"]
    needed += [str(path.relative_to(ROOT)) for path in (ROOT / "templates").rglob("*.html")]
    needed += [
        str(path.relative_to(ROOT)) for path in (ROOT / "static").rglob("*") if path.is_file()
    ]
    for path in needed:
        assert not ignored(path), path


# --- the commands, run -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def web_started_by_the_default_command(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    runtime = stages()[-1]
    [command] = [exec_form(args) for name, args in runtime if name == "CMD"]
    process = subprocess.Popen(
        [str(BIN / command[0]), *command[1:]],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        port = int(env["GUNICORN_BIND"].rsplit(":", 1)[1])
        deadline = time.monotonic() + 30
        # Ready means a worker answers, not just that the master bound the port:
        # the image's HEALTHCHECK gives the app a 30 s start period for that.
        while not _answers(port):
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline, "gunicorn did not start within 30 s"
            time.sleep(0.1)
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _answers(port: int) -> bool:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/healthz", headers={"Host": "localhost"}
    )
    with contextlib.suppress(OSError), urllib.request.urlopen(request, timeout=2) as response:
        return bool(response.status == 200)
    return False


def run_healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = healthcheck_command()
    return subprocess.run(
        [sys.executable, *command[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.slow
def test_the_default_command_serves_healthz_and_the_healthcheck_passes(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"XDG_RUNTIME_DIR", "PROMETHEUS_MULTIPROC_DIR"}
    }
    env |= {
        "HOME": str(tmp_path),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        "GUNICORN_BIND": f"127.0.0.1:{free_port()}",
        "GUNICORN_WORKERS": "1",
        "ALLOWED_HOSTS": "triage.example.com,localhost",
        "LOG_FORMAT": "json",
    }
    with web_started_by_the_default_command(env):
        passed = run_healthcheck(env)
        assert passed.returncode == 0, passed.stderr
        # Django refuses a Host it does not know: the check fails, it does not
        # pass by accident.
        refused = run_healthcheck(env | {"ALLOWED_HOSTS": "elsewhere.example.com"})
        assert refused.returncode != 0
        assert "400" in refused.stderr
        # With HOME=/tmp in the image, gunicorn's control socket lands there.
        assert (tmp_path / ".gunicorn" / "gunicorn.ctl").exists()
    assert run_healthcheck(env).returncode != 0, "nothing listens any more"
