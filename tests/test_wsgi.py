"""What a gunicorn worker has loaded before it accepts its first connection.

gunicorn imports ``triage.wsgi`` in each new worker (at start, after a
deploy, after a ``max_requests`` recycle). If the views were only imported by
the first request, that request — maybe an alert or a page at 3 a.m. — would
wait for the MCP SDK and pydantic to load: 0.8 s on an idle machine, over
5 s on a busy one (a fault test caught it).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.processes import BIN, ROOT, app_env

PROBE = """
import json, sys
import triage.wsgi
from django.template import engines
loader = engines["django"].engine.template_loaders[0]
while not hasattr(loader, "get_template_cache"):  # template_partials wraps Django's cached loader
    loader = loader.loaders[0]
watched = ("incidents.views", "integrations.mcp_http", "mcp")
print(json.dumps({
    "modules": sorted(name for name in watched if name in sys.modules),
    "templates": sorted(loader.get_template_cache),
}))
"""


@pytest.mark.subprocess
def test_a_worker_imports_every_view_and_compiles_the_first_pages_on_boot() -> None:
    probe = subprocess.run(
        [str(BIN / "python"), "-c", PROBE],
        cwd=ROOT,
        env=app_env(DEBUG="false"),
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0, probe.stderr
    loaded = json.loads(probe.stdout.strip().splitlines()[-1])
    assert loaded["modules"] == ["incidents.views", "integrations.mcp_http", "mcp"]
    assert {
        "incidents/dashboard.html",
        "incidents/detail.html",
        "registration/login.html",
    } <= set(loaded["templates"])
