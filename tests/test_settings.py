"""Bad configuration stops triage at start with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Each test starts manage.py: `make test` runs them, `make check` does not.
pytestmark = pytest.mark.subprocess


def start_with(**overrides: str | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEBUG", "maybe"),
        ("DATABASE_URL", "nonsense"),
        ("DATABASE_URL", "mysql://db/triage"),
        ("REDIS_URL", "memcached://cache"),
        ("TIME_ZONE", "Mars/Olympus_Mons"),
        ("LOG_FORMAT", "xml"),
        ("LOG_LEVEL", "loud"),
        ("DATABASE_CONN_MAX_AGE", "forever"),
        ("CSRF_TRUSTED_ORIGINS", "triage.example.com"),
        ("OUTBOUND_ALLOW", "10.0.0.0/33"),
        ("OUTBOUND_ALLOW", "http://ntfy.home.lan"),
        ("OUTBOUND_SCHEMES", "json,telepathy"),
        ("SLACK_API_URL", "slack.com/api"),
        ("MATTERMOST_URL", "chat.example.org"),
        ("CHAT_TIMEOUT", "0"),
        ("OIDC_ISSUER", "http://sso.example.org/realms/main"),
        ("OIDC_ISSUER", "sso.example.org"),
        ("OIDC_PASSWORD_LOGIN", "sometimes"),
    ],
)
def test_a_malformed_setting_fails_naming_the_variable(variable: str, value: str) -> None:
    result = start_with(**{variable: value})
    assert result.returncode != 0
    assert variable in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("variable", ["SECRET_KEY", "DATABASE_URL", "REDIS_URL"])
def test_a_missing_required_setting_fails_naming_it(variable: str) -> None:
    result = start_with(**{variable: None})
    assert result.returncode != 0
    assert f"{variable} is required" in result.stderr


def test_secrets_can_come_from_mounted_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret_key"
    secret.write_text("k" * 10 + "from-a-mounted-file-" + "x" * 30 + "\n")
    result = start_with(SECRET_KEY=None, SECRET_KEY_FILE=str(secret))
    assert result.returncode == 0, result.stderr


def test_an_unreadable_secret_file_is_named(tmp_path: Path) -> None:
    result = start_with(SECRET_KEY_FILE=str(tmp_path / "missing"))
    assert result.returncode != 0
    assert "SECRET_KEY_FILE" in result.stderr


def test_the_metrics_token_can_come_from_a_mounted_file(tmp_path: Path) -> None:
    token = tmp_path / "metrics_token"
    token.write_text("metrics-token-from-a-file\n")
    env = {**os.environ, "METRICS_TOKEN_FILE": str(token)}
    env.pop("METRICS_TOKEN", None)
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings; print(repr(settings.METRICS_TOKEN))",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("'metrics-token-from-a-file'")


OIDC = {
    "OIDC_ISSUER": "https://sso.example.invalid/realms/main",
    "OIDC_CLIENT_ID": "triage",
    "OIDC_CLIENT_SECRET": "test-only-client-secret",
}


@pytest.mark.parametrize("variable", ["OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET"])
def test_an_issuer_without_its_client_fails_naming_what_is_missing(variable: str) -> None:
    result = start_with(**{**OIDC, variable: None})
    assert result.returncode != 0
    assert f"{variable} is required when OIDC_ISSUER is set" in result.stderr
    assert "Traceback" not in result.stderr


def test_scopes_without_openid_are_refused() -> None:
    result = start_with(**OIDC, OIDC_SCOPES="email profile")
    assert result.returncode != 0
    assert "OIDC_SCOPES must include openid" in result.stderr


def test_turning_password_login_off_without_a_provider_is_refused() -> None:
    result = start_with(OIDC_PASSWORD_LOGIN="false", OIDC_ISSUER=None)
    assert result.returncode != 0
    assert "OIDC_PASSWORD_LOGIN=false needs OIDC_ISSUER" in result.stderr


def test_triage_starts_without_reaching_the_provider_and_reads_its_secret_from_a_file(
    tmp_path: Path,
) -> None:
    """The issuer's host does not exist: nothing is fetched at start."""
    secret = tmp_path / "oidc_client_secret"
    secret.write_text("secret-from-a-mounted-file\n")
    env = {
        **os.environ,
        **OIDC,
        "OIDC_CLIENT_SECRET_FILE": str(secret),
        "OIDC_PASSWORD_LOGIN": "false",
    }
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings; print(repr(settings.OIDC_CLIENT_SECRET))",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("'secret-from-a-mounted-file'")
