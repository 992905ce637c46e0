"""manage.py parse_postmortem_todos, export_postmortems and record_followup."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from time_machine import TimeMachineFixture

from incidents.models import EventKind
from postmortems import document, selectors
from postmortems.markdown_tables import parse_report
from postmortems.models import ActionStatus
from postmortems.services import change_action_status, update_postmortem
from tests.postmortem_factories import action_item, postmortem, published, resolved_incident

SAMPLES = Path(__file__).parent / "postmortem_samples"
ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_one_file_prints_one_json_object() -> None:
    out, _ = run("parse_postmortem_todos", str(SAMPLES / "new_format.md"))
    body = json.loads(out)
    assert list(body) == ["file", "todos", "skipped", "safe_todos", "skipped_todos"]
    assert body["file"] == str(SAMPLES / "new_format.md")
    assert (body["safe_todos"], body["skipped_todos"]) == (2, 2)


def test_several_files_print_a_json_array_in_order() -> None:
    names = [str(SAMPLES / "legacy_format.md"), str(SAMPLES / "mixed.md")]
    out, _ = run("parse_postmortem_todos", *names)
    assert [report["file"] for report in json.loads(out)] == names


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("name", "line", "message", "options"),
    [
        ("malformed_columns.md", 8, "expected 5 cells", []),
        ("malformed_type.md", 5, "Unknown type 'Purchase'", ["--strict"]),
    ],
)
def test_a_malformed_table_is_file_line_message_and_exit_status_1(
    name: str, line: int, message: str, options: list[str]
) -> None:
    path = str(SAMPLES / name)
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "parse_postmortem_todos",
            *options,
            str(SAMPLES / "mixed.md"),
            path,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"{path}:{line}: ")
    assert message in result.stderr


@pytest.mark.subprocess
def test_an_unknown_type_is_reported_as_skipped_and_not_safe_with_a_warning() -> None:
    path = str(SAMPLES / "malformed_type.md")
    result = subprocess.run(
        [sys.executable, "manage.py", "parse_postmortem_todos", str(SAMPLES / "mixed.md"), path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    mixed, unknown = json.loads(result.stdout)
    assert mixed == parse_report((SAMPLES / "mixed.md").read_text(), str(SAMPLES / "mixed.md"))
    assert unknown == {
        "file": path,
        "todos": [],
        "skipped": [
            {
                "priority": "P1",
                "action": "Buy a bigger disk",
                "type": "Purchase",
                "details": "from the usual vendor",
                "safe": False,
            }
        ],
        "safe_todos": 0,
        "skipped_todos": 1,
    }
    assert result.stderr.startswith(f"{path}:5: warning: unknown type 'Purchase'")
    assert "Alert, Config, Monitor" in result.stderr
    assert result.stderr.count("\n") == 1


def test_an_unknown_type_never_lands_among_the_safe_todos(tmp_path: Path) -> None:
    path = tmp_path / "pm.md"
    path.write_text(
        "| Priority | Action | Type | Details | Status |\n"
        "|---|---|---|---|---|\n"
        "| P0 | Add disk alert | Alert | | TODO |\n"
        "| P1 | Tweak the alert rule | Alerting | looks safe, is not known | TODO |\n"
        "| P2 | Old thing | Chore | | Done |\n"
        "| P3 | Nobody typed it |  | | In progress |\n"
    )

    out, err = run("parse_postmortem_todos", str(path))

    report = json.loads(out)
    assert [t["action"] for t in report["todos"]] == ["Add disk alert"]
    assert [(s["action"], s["type"], s["safe"]) for s in report["skipped"]] == [
        ("Tweak the alert rule", "Alerting", False),
        ("Nobody typed it", "", False),
    ]
    # The Done row is not pending, so it is not reported, but its type is still flagged.
    assert [line.split(": warning:")[0] for line in err.splitlines()] == [
        f"{path}:4",
        f"{path}:5",
        f"{path}:6",
    ]


def test_strict_refuses_the_file_and_prints_nothing(tmp_path: Path) -> None:
    path = tmp_path / "pm.md"
    path.write_text(
        "| Priority | Action | Type | Details | Status |\n"
        "|---|---|---|---|---|\n"
        "| P0 | Add disk alert | Alert | | TODO |\n"
        "| P1 | Tweak the alert rule | Alerting | | TODO |\n"
    )
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("parse_postmortem_todos", "--strict", str(path), stdout=out, stderr=err)
    assert exited.value.code == 1
    assert out.getvalue() == ""
    assert err.getvalue().startswith(f"{path}:4: Unknown type 'Alerting'")


def test_a_missing_file_is_an_error_too() -> None:
    err = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("parse_postmortem_todos", "/nonexistent/pm.md", stderr=err)
    assert exited.value.code == 1
    assert err.getvalue().startswith("/nonexistent/pm.md: cannot read: No such file")


@pytest.mark.django_db
def test_export_writes_dated_markdown_files_and_an_index(
    tmp_path: Path, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(datetime(2026, 4, 14, 9, 30, tzinfo=UTC), tick=False)
    pm = postmortem(resolved_incident(title="NFS outage"))
    published(pm)
    postmortem(resolved_incident(title="Still a draft"))

    out, _ = run("export_postmortems", str(tmp_path / "site"))

    files = sorted(p.name for p in (tmp_path / "site").iterdir())
    assert files == ["2026-04-14-nfs-outage.md", "index.html"]
    assert "Wrote 1 post-mortem(s)" in out
    index = (tmp_path / "site" / "index.html").read_text()
    assert 'href="2026-04-14-nfs-outage.md"' in index
    assert "Still a draft" not in index
    markdown = (tmp_path / "site" / "2026-04-14-nfs-outage.md").read_text()
    assert markdown.startswith("# NFS outage\n")


@pytest.mark.django_db
def test_the_export_parses_back_to_the_same_pending_items(tmp_path: Path) -> None:
    pm = postmortem(resolved_incident(title="Storage outage"))
    update_postmortem(pm, actor=None, summary="| a table-looking | summary |")
    action_item(pm, priority="P0", action="Add NFS | RPC alert", type="Alert", details="a\nb")
    action_item(pm, priority="P1", action="Migrate Vault", type="Migration")
    action_item(pm, priority="P3", action="Set mount timeo", type="Config", details="600")
    done = action_item(pm, priority="P2", action="Add TCP monitor", type="Monitor")
    change_action_status(done, ActionStatus.DONE, actor=None)
    dropped = action_item(pm, action="Rewrite storage", type="Architecture")
    change_action_status(dropped, ActionStatus.WONT_DO, actor=None)
    progress = action_item(pm, action="Write runbook", type="Runbook")
    change_action_status(progress, ActionStatus.IN_PROGRESS, actor=None)
    published(pm)
    run("export_postmortems", str(tmp_path))
    path = tmp_path / document.export_filename(pm)

    out, _ = run("parse_postmortem_todos", str(path))

    parsed = json.loads(out)
    from_db = document.todo_json(pm, selectors.action_items(pm))
    for entry in from_db["todos"] + from_db["skipped"]:
        del entry["id"], entry["done_url"]
    assert parsed == {**from_db, "file": str(path)}
    assert parsed["safe_todos"] == 2
    assert [t["action"] for t in parsed["skipped"]] == ["Migrate Vault", "Write runbook"]
    assert parsed["todos"][0]["details"] == "a\nb"
    assert parse_report(path.read_text(), "x")["todos"] == parsed["todos"]


@pytest.mark.django_db
def test_the_public_index_lists_the_same_post_mortems(client: Client) -> None:
    pm = published(postmortem(resolved_incident(title="NFS outage")))
    action_item(pm)
    html = client.get("/postmortems/").content.decode()
    assert f'href="/postmortems/{pm.pk}"' in html
    assert "0 / 1" in html


@pytest.mark.django_db
def test_record_followup_marks_the_item_done_and_fills_the_follow_up_table() -> None:
    pm = postmortem()
    item = action_item(pm, action="Add NFS alert")

    out, _ = run(
        "record_followup", str(pm.pk), str(item.pk), "--commit", "ABC1234DEF", "--by", "bot"
    )
    again, _ = run(
        "record_followup", str(pm.pk), str(item.pk), "--commit", "abc1234def", "--by", "bot"
    )

    assert out.strip() == "Recorded: Add NFS alert is done."
    assert again.strip() == "Already recorded: Add NFS alert is done."
    item.refresh_from_db()
    assert (item.status, item.commit, item.implemented_by) == ("done", "abc1234def", "bot")
    assert pm.incident.timeline.filter(kind=EventKind.NOTE).count() == 1
    text = document.postmortem_markdown(pm, selectors.action_items(pm))
    assert "| Add NFS alert | P2 | Alert | `abc1234def` | bot |" in text


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--commit", "zzz", "--by", "bot"], "is not a commit SHA"),
        (["--by", "bot"], "Give the commit SHA or a link"),
        (["--commit", "abc1234", "--by", " "], "Say who implemented it"),
    ],
)
def test_record_followup_refuses_bad_input(args: list[str], message: str) -> None:
    pm = postmortem()
    item = action_item(pm)
    with pytest.raises(CommandError, match=message):
        run("record_followup", str(pm.pk), str(item.pk), *args)
    item.refresh_from_db()
    assert item.status == "todo"


@pytest.mark.django_db
def test_record_followup_on_a_missing_item_says_so() -> None:
    with pytest.raises(CommandError, match="No action item #2 in post-mortem #1"):
        run("record_followup", "1", "2", "--commit", "abc1234", "--by", "bot")
