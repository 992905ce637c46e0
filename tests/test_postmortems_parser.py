"""postmortems.markdown_tables: the TODO parser, over the sample post-mortems."""

from __future__ import annotations

from pathlib import Path

import pytest

from postmortems import vocabulary
from postmortems.markdown_tables import (
    TableError,
    escape_cell,
    infer_type,
    parse_actions,
    parse_report,
    parse_status,
    split_row,
    todo_report,
)
from postmortems.models import ActionType, Priority

SAMPLES = Path(__file__).parent / "postmortem_samples"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def test_the_new_format_gives_pending_items_split_into_safe_and_review() -> None:
    report = parse_report(sample("new_format.md"), "docs/2026-04-14-nfs.md")
    assert report == {
        "file": "docs/2026-04-14-nfs.md",
        "todos": [
            {
                "priority": "P2",
                "action": "Add NFS RPC retransmission alert",
                "type": "Alert",
                "details": "Fire when retrans > 1%",
                "safe": True,
            },
            {
                "priority": "P0",
                "action": "Set `timeo=600` on NFS mounts",
                "type": "Config",
                "details": "mount options | in the storage class",
                "safe": True,
            },
        ],
        "skipped": [
            {
                "priority": "P1",
                "action": "Migrate Vault to encrypted PVC",
                "type": "Migration",
                "details": "Needs a maintenance window",
                "safe": False,
            },
            {
                "priority": "P2",
                "action": "Document the recovery procedure",
                "type": "Runbook",
                "details": "line one\nline two",
                "safe": False,
            },
        ],
        "safe_todos": 2,
        "skipped_todos": 2,
    }


def test_done_and_wont_do_rows_are_read_but_not_reported() -> None:
    statuses = [row.status for row in parse_actions(sample("new_format.md"))]
    assert statuses == ["todo", "todo", "in_progress", "done", "wont_do", "todo"]


def test_other_tables_such_as_the_follow_up_table_are_ignored() -> None:
    actions = [row.action for row in parse_actions(sample("new_format.md"))]
    assert "Nodes" not in actions
    assert actions.count("Add Uptime Kuma TCP monitor for NFS") == 1


def test_the_legacy_format_infers_types_from_the_words_and_assumes_p2() -> None:
    report = parse_report(sample("legacy_format.md"), "legacy.md")
    assert [(t["action"], t["type"]) for t in report["todos"]] == [
        ("Add PrometheusRule for CoreDNS errors", "Alert"),
        ("Add Uptime Kuma monitor for the resolver", "Monitor"),
    ]
    assert [(t["action"], t["type"]) for t in report["skipped"]] == [
        ("Migrate DNS to a dedicated node", "Migration"),
        ("Investigate why the forwarder timed out", "Investigation"),
        ("Write a note for the team", "Investigation"),
    ]
    assert {t["priority"] for t in report["todos"] + report["skipped"]} == {"P2"}
    assert (report["safe_todos"], report["skipped_todos"]) == (2, 3)


def test_a_mixed_document_reads_both_formats_in_order_and_skips_code_blocks() -> None:
    report = parse_report(sample("mixed.md"), "mixed.md")
    assert [t["action"] for t in report["todos"]] == [
        "Tune the alert threshold for disk usage",
        "Add a heartbeat monitor for backups",
    ]
    assert report["todos"][0]["type"] == "Alert"
    assert report["skipped"] == [
        {
            "priority": "P2",
            "action": "Review backup retention",
            "type": "Investigation",
            "details": "",
            "safe": False,
        }
    ]


def test_a_document_without_action_tables_has_nothing_to_do() -> None:
    assert parse_report(sample("no_tables.md"), "x.md") == {
        "file": "x.md",
        "todos": [],
        "skipped": [],
        "safe_todos": 0,
        "skipped_todos": 0,
    }


def test_a_row_with_the_wrong_number_of_cells_is_an_error_with_its_line() -> None:
    with pytest.raises(TableError) as caught:
        parse_actions(sample("malformed_columns.md"))
    assert caught.value.line == 8
    assert "expected 5 cells" in caught.value.message
    assert "found 4" in caught.value.message


def test_an_unknown_type_in_the_new_format_is_an_error_naming_the_allowed_types() -> None:
    with pytest.raises(TableError) as caught:
        parse_actions(sample("malformed_type.md"))
    assert caught.value.line == 5
    assert "Unknown type 'Purchase'" in caught.value.message
    assert "Alert, Config, Monitor" in caught.value.message


def test_not_strict_an_unknown_type_is_kept_as_written_and_never_safe() -> None:
    [row] = parse_actions(sample("malformed_type.md"), strict=False)
    assert (row.type, row.unknown_type, row.line) == ("Purchase", True, 5)
    assert not parse_actions(sample("new_format.md"), strict=False)[0].unknown_type
    report = todo_report("x.md", [row])
    assert (report["todos"], report["skipped"][0]["safe"]) == ([], False)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("| P9 | Add alert | Alert | | TODO |", "unknown priority 'P9'"),
        ("| P1 | Add alert | Alert | | Maybe |", "unknown status 'Maybe'"),
        ("| P1 |  | Alert | details | TODO |", "the Action cell is empty"),
    ],
)
def test_bad_cells_are_errors(row: str, message: str) -> None:
    text = "| Priority | Action | Type | Details | Status |\n|---|---|---|---|---|\n" + row
    with pytest.raises(TableError, match=message) as caught:
        parse_actions(text)
    assert caught.value.line == 3


def test_an_alignment_row_that_does_not_match_the_header_is_an_error() -> None:
    text = "| Action | Status | Details |\n|---|---|\n| Add alert | TODO | x |\n"
    with pytest.raises(TableError, match="alignment row has 2 cells") as caught:
        parse_actions(text)
    assert caught.value.line == 2


def test_empty_rows_and_rows_without_outer_pipes_are_fine() -> None:
    text = (
        "Priority | Action | Type | Details | Status\n"
        "--- | --- | --- | --- | ---\n"
        "|  |  |  |  |  |\n"
        "P1 | Add alert | ALERT | x | todo\n"
    )
    [row] = parse_actions(text)
    assert (row.priority, row.action, row.type, row.status) == ("P1", "Add alert", "Alert", "todo")


def test_cells_round_trip_through_escaping() -> None:
    text = "a | b\n  c  d  \n"
    assert split_row(f"| {escape_cell(text)} |") == ["a | b\nc d"]


@pytest.mark.parametrize(
    ("action", "kind"),
    [
        ("Add NFS alert", "Alert"),
        ("Add alerting for disk pressure", "Alert"),
        ("Add Uptime Kuma HTTP monitor", "Monitor"),
        ("Add a health check for the API", "Monitor"),
        ("Increase the NFS timeout", "Config"),
        ("Tune retries in the client", "Config"),
        ("Migrate Vault to encrypted PVC", "Migration"),
        ("Move backups to the new node", "Migration"),
        ("Redesign storage for high availability", "Architecture"),
        ("Investigate the kernel panic", "Investigation"),
        ("Review alert thresholds", "Investigation"),
        ("Document the restore procedure", "Runbook"),
        ("Write a runbook for failover of DNS", "Architecture"),
        ("Buy coffee", "Investigation"),
        ("Make pageant posters", "Investigation"),
    ],
)
def test_legacy_types_are_inferred_from_keywords_review_types_first(action: str, kind: str) -> None:
    assert infer_type(action) == kind


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("TODO", "todo"),
        ("to do", "todo"),
        ("In-progress", "in_progress"),
        ("✅ Done (abc1234)", "done"),
        ("**Done**", "done"),
        ("Won\u2019t do", "wont_do"),
        ("wontfix", "wont_do"),
        ("", None),
        ("later", None),
    ],
)
def test_statuses_are_read_loosely(word: str, status: str | None) -> None:
    assert parse_status(word) == status


def test_the_vocabulary_and_the_database_choices_agree() -> None:
    assert tuple(ActionType.values) == vocabulary.TYPES
    assert tuple(Priority.values) == vocabulary.PRIORITIES
    assert [t for t in vocabulary.TYPES if vocabulary.is_safe(t)] == ["Alert", "Config", "Monitor"]
