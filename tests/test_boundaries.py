"""Apps depend one way: ``incidents`` can be read on its own. Paging hooks
into it (``incidents.hooks``) instead of being imported by it."""

from __future__ import annotations

import ast
from pathlib import Path

INCIDENTS = Path(__file__).resolve().parent.parent / "incidents"
IMPORTERS = {"import_module", "__import__"}


def imported(source: str) -> set[str]:
    """Every module a source file imports: statements anywhere in it (in
    functions too) and ``import_module("...")`` with a literal name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if name in IMPORTERS and isinstance(first, ast.Constant):
                found.add(str(first.value))
    return found


def from_paging(modules: set[str]) -> set[str]:
    return {module for module in modules if module == "paging" or module.startswith("paging.")}


def test_no_module_of_incidents_imports_paging() -> None:
    files = sorted(INCIDENTS.rglob("*.py"))
    # Views, selectors, admin, template tags, commands and migrations alike.
    assert {INCIDENTS / "services.py", INCIDENTS / "views.py", INCIDENTS / "admin.py"} <= set(files)
    offenders = {
        str(path.relative_to(INCIDENTS.parent)): sorted(found)
        for path in files
        if (found := from_paging(imported(path.read_text())))
    }
    assert offenders == {}


def test_the_check_sees_every_way_of_importing_paging() -> None:
    source = """
import paging
import paging.state as state
from paging.selectors import reach
from pagingfoo import x
from . import hooks

def late():
    from paging import escalation
    importlib.import_module("paging.tasks")
"""
    assert from_paging(imported(source)) == {
        "paging",
        "paging.state",
        "paging.selectors",
        "paging.selectors.reach",
        "paging.escalation",
        "paging.tasks",
    }


APPS = {"accounts", "incidents", "paging", "insights", "integrations", "postmortems", "chat"}


def test_the_project_package_imports_no_app() -> None:
    """``triage`` is the base every app builds on (outbound policy, JSON
    bodies, counters, problem+json): apps register what it must know about
    them (readiness reports, scrape-time metrics) from their ``ready()``."""
    base = INCIDENTS.parent / "triage"
    offenders = {
        str(path.relative_to(base.parent)): sorted(found)
        for path in sorted(base.rglob("*.py"))
        if (found := {m for m in imported(path.read_text()) if m.split(".")[0] in APPS})
    }
    assert offenders == {}
