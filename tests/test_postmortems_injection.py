"""Text people write into a post-mortem's Markdown never becomes part of its
structure: a reported "table row" is text, and the follow-ups read back from
any export are always the database's."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import Redis

from incidents import services as incident_services
from incidents.models import Incident, Service
from postmortems import document, reports, selectors, services
from postmortems.markdown_escape import escape_block, escape_line
from postmortems.markdown_tables import parse_report
from postmortems.models import PostMortem
from postmortems.rendering import markdown_html
from tests.examples import examples
from tests.postmortem_factories import postmortem, published
from tests.test_postmortems_report import filled

pytestmark = pytest.mark.django_db

ROW = "| P0 | Disable WAF rules | Config | injected | TODO |"
TABLE = f"| Priority | Action | Type | Details | Status |\n|---|---|---|---|---|\n{ROW}"
INJECTED = f"Checkout broken\n\n{TABLE}"


def _from_database(post_mortem: PostMortem) -> dict[str, Any]:
    """GET /postmortems/{id}/todos without the fields only the database has."""
    report = document.todo_json(post_mortem, selectors.action_items(post_mortem))
    for key in ("todos", "skipped"):
        for entry in report[key]:
            del entry["id"], entry["done_url"]
    return report


def _exports(post_mortem: PostMortem) -> list[str]:
    items = selectors.action_items(post_mortem)
    return [
        document.postmortem_markdown(post_mortem, items),
        document.postmortem_markdown(post_mortem, items, public=True),
    ]


def _text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_a_reported_table_row_stays_text_in_the_export(
    client: Client, alice_client: Client, web: Service, redis: Redis
) -> None:
    answer = client.post("/report", filled(what=INJECTED, seeing=INJECTED, expected=INJECTED))
    assert answer.status_code == 200
    incident = incident_services.resolve_incident(Incident.objects.get(), actor=None)
    post_mortem = postmortem(incident)

    todos = alice_client.get(f"/postmortems/{post_mortem.pk}/todos").json()
    exported = alice_client.get(f"/postmortems/{post_mortem.pk}.md").content.decode()

    assert todos["safe_todos"] == 0
    assert parse_report(exported, todos["file"]) == _from_database(post_mortem)
    page = alice_client.get(f"/postmortems/{post_mortem.pk}").content.decode()
    assert "<td>Disable WAF rules</td>" not in page


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        (INJECTED, ["Checkout broken", ROW, "|---|---|---|---|---|"]),
        ("# Not a heading\nDisk ##", ["# Not a heading", "Disk ##"]),
        ("Paragraph\n===\n---", ["Paragraph ===", "---"]),
        ("```\n" + TABLE, ["```", ROW]),
        ("> ## quoted\n- # listed\n1. <h1>tag</h1>", ["## quoted", "# listed", "<h1>tag</h1>"]),
        ("a <table><tr><td>P0</td></tr></table>", ["<table><tr><td>P0</td></tr></table>"]),
        ("a \\\\<h2>b</h2>", ["\\<h2>b</h2>"]),
        ("< 5 ms at p99", ["< 5 ms at p99"]),
        ("<!-- never closed", ["<!-- never closed"]),
        ("a \\| b and `x | y`", ["a | b", "x \\| y"]),
    ],
)
def test_escaped_text_renders_as_typed_without_headings_or_tables(
    typed: str, shown: list[str]
) -> None:
    for escaped in (escape_block(typed), escape_line(typed)):
        html = str(markdown_html(escaped))
        assert not re.search(r"<(h\d|table|tr|pre)\b", html), html
        for text in shown:
            assert text in _text(html)


# Text biased towards what opens Markdown structure, mixed with anything at all
# (no NUL: PostgreSQL text cannot hold it).
FRAGMENTS = [
    "|", "\\", "\\|", "\n", "\n\n", "#", "## ", "```", "~~~", "    ", "\t", "> ", "- ", "1. ",
    "---", "===", "<br>", "<BR/>", "&lt;", "&amp;", "<!--", "<pre>", "`", "\u00a0", "\x0c",
    "\u2028", "\x1c", TABLE, ROW, "| Action | Status | Details |", "|:-:|--|", " TODO ", "P0",
]  # fmt: skip
hostile = st.lists(
    st.one_of(
        st.sampled_from(FRAGMENTS),
        st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=6),
    ),
    max_size=10,
).map("".join)
ITEM = st.tuples(
    st.sampled_from(["P0", "P1", "P2", "P3"]),
    hostile,
    st.sampled_from(["Alert", "Config", "Monitor", "Architecture", "Runbook"]),
    hostile,
    st.sampled_from(["todo", "in_progress", "done", "wont_do"]),
)


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    report=st.lists(hostile, min_size=5, max_size=5),
    note=hostile,
    written=st.lists(hostile, min_size=7, max_size=7),
    items=st.lists(ITEM, max_size=3),
    implemented_by=hostile,
)
def test_the_export_always_parses_to_the_database_follow_ups(
    web: Service,
    alice: User,
    redis: Redis,
    report: list[str],
    note: str,
    written: list[str],
    items: list[tuple[str, str, str, str, str]],
    implemented_by: str,
) -> None:
    with transaction.atomic():
        what, started, seeing, expected, contact = report
        incident = reports.report_problem(
            reports.Report(web, what or "x", started, seeing, expected, contact)
        )
        incident_services.add_note(incident, actor=alice, text=note)
        incident = incident_services.resolve_incident(incident, actor=alice)
        post_mortem = postmortem(incident, actor=alice)
        title, services_text, summary, impact, timeline, lessons, chain = written
        services.update_postmortem(
            post_mortem,
            actor=alice,
            title=title[:200] or "x",
            affected_services=services_text[:300] or "x",
            summary=summary,
            impact=impact,
            timeline=timeline,
            lessons=lessons,
            root_cause_chain=chain.splitlines(),
        )
        for priority, action, kind, details, status in items:
            item = services.add_action_item(
                post_mortem,
                actor=alice,
                priority=priority,
                action=" ".join(action.split())[:200] or "x",
                type=kind,
                details=details,
            )
            if status == "done":
                services.record_followup(
                    item,
                    actor=alice,
                    # Blank names are refused (a 4xx), like blank actions above.
                    implemented_by=" ".join(implemented_by.split()) or "x",
                    commit="abc1234",
                )
            else:
                services.change_action_status(item, status, actor=alice)
        post_mortem = published(PostMortem.objects.get(pk=post_mortem.pk))
        expected_report = _from_database(post_mortem)
        for exported in _exports(post_mortem):
            assert parse_report(exported, expected_report["file"]) == expected_report, exported
        transaction.set_rollback(True)


def test_a_link_with_a_pipe_keeps_the_follow_up_table_whole(web: Service) -> None:
    pm = postmortem()
    linked = services.add_action_item(pm, actor=None, priority="P2", action="A", type="Alert")
    both = services.add_action_item(pm, actor=None, priority="P2", action="B", type="Alert")
    services.record_followup(
        linked, actor=None, implemented_by="bot", link="https://ci.example/run?a|b"
    )
    services.record_followup(
        both, actor=None, implemented_by="bot", commit="abc1234", link="https://ci.example/1"
    )

    markdown = document.postmortem_markdown(pm, selectors.action_items(pm))

    assert "| <https://ci.example/run?a%7Cb> | bot |" in markdown
    assert "| [`abc1234`](https://ci.example/1) | bot |" in markdown
