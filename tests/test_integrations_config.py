"""The Alertmanager configuration the integrations page prints is a whole
alertmanager.yml that the real amtool accepts as pasted."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from incidents.models import Service
from integrations.config import snippets
from tests.integration_factories import integration

pytestmark = pytest.mark.django_db


def amtool() -> str:
    binary = shutil.which("amtool")
    # Not a skip: CI installs it (.ci/run: Debian's prometheus-alertmanager).
    assert binary, "amtool is missing: apt-get install prometheus-alertmanager (.ci/run does)"
    return binary


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [amtool(), "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("shown", ["with the new key", "later, with a placeholder"])
def test_each_alertmanager_snippet_passes_amtool_as_pasted_into_an_empty_file(
    web: Service, settings: Any, tmp_path: Path, shown: str
) -> None:
    settings.BASE_URL = "https://triage.example.org"
    created = integration(web, "alertmanager")
    raw = created.raw if shown == "with the new key" else None
    for number, snippet in enumerate(snippets(created.integration, raw)):
        path = tmp_path / f"alertmanager-{number}.yml"
        path.write_text(snippet.text)
        checked = check_config(path)
        assert checked.returncode == 0, (snippet.title, checked.stdout, checked.stderr)
        assert "SUCCESS" in checked.stdout
        config = yaml.safe_load(snippet.text)
        assert config["route"]["receiver"] == config["receivers"][0]["name"] == "triage-web"


def test_amtool_rejects_a_receivers_block_alone(tmp_path: Path) -> None:
    """What the page used to print: the check above is one amtool can fail."""
    path = tmp_path / "alertmanager.yml"
    path.write_text(
        "receivers:\n  - name: triage-web\n    webhook_configs:\n"
        '      - url: "https://triage.example.org/integrations/alertmanager"\n'
    )
    checked = check_config(path)
    assert checked.returncode != 0
    assert "no routes provided" in checked.stdout + checked.stderr
