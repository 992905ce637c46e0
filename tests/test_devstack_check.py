"""`make check` and `make test` skip collectstatic while nothing it collects changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from triage import devstack


@pytest.fixture
def collected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, ...]]:
    """Every manage.py command devstack would run, recorded instead of run;
    collectstatic writes the manifest as the real one does."""
    ran: list[tuple[str, ...]] = []

    def manage(*args: str, env: dict[str, str]) -> None:
        ran.append(args)
        Path(env["STATIC_ROOT"]).mkdir(exist_ok=True)
        (Path(env["STATIC_ROOT"]) / "staticfiles.json").write_text("{}")

    monkeypatch.setattr(devstack, "manage", manage)
    return ran


def collect(folder: Path, *, kept: bool = True) -> devstack.Clock:
    clock = devstack.Clock()
    env = {"STATIC_ROOT": str(folder / "static")}
    devstack._collect_static(folder, kept=kept, env=env, clock=clock)
    return clock


def test_the_second_run_skips_collectstatic_until_a_static_file_changes(
    collected: list[tuple[str, ...]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    collect(tmp_path)
    assert len(collected) == 1
    assert collected[0][0] == "collectstatic"
    assert [name for name, _ in collect(tmp_path).phases] == []
    assert len(collected) == 1

    monkeypatch.setattr(devstack, "_static_fingerprint", lambda: "a stylesheet changed")
    assert [name for name, _ in collect(tmp_path).phases] == ["collectstatic"]
    assert len(collected) == 2


def test_a_missing_manifest_or_a_throw_away_folder_collects_again(
    collected: list[tuple[str, ...]], tmp_path: Path
) -> None:
    collect(tmp_path)
    (tmp_path / "static" / "staticfiles.json").unlink()
    collect(tmp_path)
    assert len(collected) == 2

    spare = tmp_path / "spare"
    spare.mkdir()
    collect(spare, kept=False)
    collect(spare, kept=False)
    assert len(collected) == 4
    assert not (spare / "static.fingerprint").exists()


def test_the_fingerprint_follows_the_project_s_static_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "triage").mkdir()
    (tmp_path / "triage" / "settings.py").write_text("STATIC_URL = 'static/'\n")
    (tmp_path / "static" / "css").mkdir(parents=True)
    style = tmp_path / "static" / "css" / "triage.css"
    style.write_text("body { color: black }")
    (tmp_path / "postmortems" / "static").mkdir(parents=True)
    (tmp_path / ".triage" / "static").mkdir(parents=True)  # collectstatic's output, say
    monkeypatch.setattr(devstack, "ROOT", tmp_path)

    before = devstack._static_fingerprint()
    assert devstack._static_fingerprint() == before
    (tmp_path / ".triage" / "static" / "triage.1234.css").write_text("collected")
    assert devstack._static_fingerprint() == before

    style.write_text("body { color: red }")
    assert devstack._static_fingerprint() != before
    style.write_text("body { color: black }")
    (tmp_path / "postmortems" / "static" / "editor.js").write_text("// new")
    assert devstack._static_fingerprint() != before
    changed = devstack._static_fingerprint()
    (tmp_path / "triage" / "settings.py").write_text("STATIC_URL = 'assets/'\n")
    assert devstack._static_fingerprint() != changed
