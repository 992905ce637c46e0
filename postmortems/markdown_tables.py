"""Read the follow-up actions out of a post-mortem written in Markdown.

Pure Python (no Django), so ``manage.py parse_postmortem_todos``, the export
round-trip tests and any outside script can share it.

Which tables are read
---------------------
A table is a header row, an alignment row (``|---|:--:|``) and the rows up to
the next blank line or non-table line. Only tables whose header names are one
of these sets (in any order, case and ``**bold**`` ignored) are action tables;
every other table (the Follow-up Implementation table, a facts table) is left
alone:

- the Prevention Plan table: ``Priority | Action | Type | Details | Status``;
- the legacy table: ``Action | Status | Details`` — no priority (``P2`` is
  assumed) and no type (inferred from the action's words, below).

A file may hold several action tables, in both formats; rows are returned in
document order. Tables inside fenced code blocks are ignored. Cells may be
padded with any number of spaces; ``\\|`` is a literal pipe inside a cell and
``<br>`` a line break (that is how ``export_postmortems`` writes them).

Statuses (case-insensitive, a trailing remark such as ``Done (abc123)`` is
allowed): ``TODO`` (also *to do, open, pending, planned*), ``In progress``
(*in-progress, wip, doing, started, ongoing*), ``Done`` (*complete, completed,
fixed, implemented, resolved*) and ``Won't do`` (*wont do, won't fix, wontfix,
dropped, cancelled, canceled, rejected*).

Errors
------
A malformed action table raises ``TableError`` with the 1-based line number:
a row with the wrong number of cells, an alignment row that does not match the
header, a missing action, an unknown priority or status, and — in the
Prevention Plan format, when ``strict`` — a type that is not one of Alert,
Config, Monitor, Architecture, Investigation, Migration, Runbook. Not strict,
such a row keeps the type as written, is marked ``unknown_type`` and is not
safe (``is_safe`` knows only the three safe types), so automation leaves it to
a person: the pipeline this serves treats whatever it cannot classify as
unsafe.

Inferring the type of a legacy row
----------------------------------
The action is lower-cased and searched for these keywords, group by group in
this order; the first group with a match gives the type. A keyword matches
whole words; ``*`` means "any ending" (``migrat*`` matches *migrate,
migrating, migration*). The groups that need human review come first, so an
action that mentions both a migration and an alert is left for a person.

1. Migration: ``migrat*``, ``move``, ``moves``, ``moved``, ``moving``,
   ``relocat*``, ``replac*``, ``upgrad*``
2. Architecture: ``architect*``, ``redesign*``, ``re-architect*``,
   ``high availability``, ``redundan*``, ``replica*``, ``failover``,
   ``fail over``, ``single point of failure``
3. Investigation: ``investigat*``, ``research*``, ``review*``, ``verif*``,
   ``understand*``, ``root cause``, ``analys*``, ``analyz*``, ``find out``,
   ``figure out``, ``why``
4. Runbook: ``runbook*``, ``playbook*``, ``document*``, ``procedure*``,
   ``write up``, ``write-up``, ``how-to``, ``docs``
5. Alert: ``alert*``, ``alertmanager``, ``prometheusrule*``, ``page``,
   ``paging``, ``notif*``
6. Monitor: ``monitor*``, ``uptime``, ``probe*``, ``health check*``,
   ``healthcheck*``, ``ping``, ``tcp check*``, ``heartbeat*``, ``synthetic``
7. Config: ``config*``, ``setting*``, ``option*``, ``limit*``, ``timeout*``,
   ``retry``, ``retries``, ``threshold*``, ``increas*``, ``decreas*``,
   ``tun*``, ``enabl*``, ``disabl*``, ``bump*``

No match: ``Investigation``. Unlike the shell script this replaces, an action
nobody can classify is never treated as safe to automate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from postmortems.vocabulary import (
    PENDING_STATUSES,
    STATUSES,
    canonical_priority,
    canonical_type,
    is_safe,
    unknown_type_message,
)

NEW_COLUMNS = ("priority", "action", "type", "details", "status")
LEGACY_COLUMNS = ("action", "status", "details")
LEGACY_PRIORITY = "P2"
DEFAULT_TYPE = "Investigation"

TYPE_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Migration",
        ("migrat*", "move", "moves", "moved", "moving", "relocat*", "replac*", "upgrad*"),
    ),
    (
        "Architecture",
        (
            "architect*",
            "redesign*",
            "re-architect*",
            "high availability",
            "redundan*",
            "replica*",
            "failover",
            "fail over",
            "single point of failure",
        ),
    ),
    (
        "Investigation",
        (
            "investigat*",
            "research*",
            "review*",
            "verif*",
            "understand*",
            "root cause",
            "analys*",
            "analyz*",
            "find out",
            "figure out",
            "why",
        ),
    ),
    (
        "Runbook",
        (
            "runbook*",
            "playbook*",
            "document*",
            "procedure*",
            "write up",
            "write-up",
            "how-to",
            "docs",
        ),
    ),
    ("Alert", ("alert*", "alertmanager", "prometheusrule*", "page", "paging", "notif*")),
    (
        "Monitor",
        (
            "monitor*",
            "uptime",
            "probe*",
            "health check*",
            "healthcheck*",
            "ping",
            "tcp check*",
            "heartbeat*",
            "synthetic",
        ),
    ),
    (
        "Config",
        (
            "config*",
            "setting*",
            "option*",
            "limit*",
            "timeout*",
            "retry",
            "retries",
            "threshold*",
            "increas*",
            "decreas*",
            "tun*",
            "enabl*",
            "disabl*",
            "bump*",
        ),
    ),
)

_STATUS_WORDS: dict[str, tuple[str, ...]] = {
    "todo": ("todo", "to do", "open", "pending", "planned"),
    "in_progress": ("in progress", "wip", "doing", "started", "ongoing"),
    "done": ("done", "complete", "completed", "fixed", "implemented", "resolved"),
    "wont_do": (
        "won't do",
        "wont do",
        "won't fix",
        "wont fix",
        "wontfix",
        "dropped",
        "cancelled",
        "canceled",
        "rejected",
    ),
}
STATUS_WORD = dict(STATUSES)  # stored value → the word written in tables

_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")
_ALIGNMENT_CELL = re.compile(r"^:?-+:?$")
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_EMPHASIS = re.compile(r"[*_`~]")
# What Markdown shows for these entities; escape_cell writes them so a "<br>"
# typed into an action item stays text instead of becoming a line break.
_ENTITIES = {"lt": "<", "gt": ">", "amp": "&"}
_ENTITY = re.compile(r"&(lt|gt|amp);")


def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    stem = keyword.removesuffix("*")
    body = r"\s+".join(re.escape(word) for word in stem.split(" "))
    ending = r"[\w-]*" if keyword.endswith("*") else r"(?![\w-])"
    return re.compile(rf"(?<![\w-]){body}{ending}")


_TYPE_PATTERNS = tuple(
    (name, tuple(_keyword_pattern(keyword) for keyword in keywords))
    for name, keywords in TYPE_KEYWORDS
)


class TableError(ValueError):
    """A malformed action table; ``line`` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line, self.message = line, message


class ActionLike(Protocol):
    """What the JSON report needs from an action item (a parsed row or a model)."""

    @property
    def priority(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def details(self) -> str: ...
    @property
    def status(self) -> str: ...


@dataclass(frozen=True)
class ParsedAction:
    priority: str
    action: str
    type: str
    details: str
    status: str  # one of the stored values: todo, in_progress, done, wont_do
    line: int
    inferred: bool = False  # the type came from the action's words (legacy table)
    unknown_type: bool = False  # the Type cell is none of the seven (kept as written)


def normalize_text(text: str) -> str:
    """Cell text as the parser returns it: runs of spaces collapsed, each line
    trimmed, no blank first or last line. Services store action items in this
    form so a post-mortem survives export → parse unchanged."""
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    return "\n".join(lines).strip("\n")


def infer_type(action: str) -> str:
    """The type of a legacy row, from the keyword groups in the module docstring."""
    lowered = action.lower()
    for name, patterns in _TYPE_PATTERNS:
        if any(pattern.search(lowered) for pattern in patterns):
            return name
    return DEFAULT_TYPE


def parse_status(word: str) -> str | None:
    """``"✅ Done (abc123)"`` → ``"done"``; None when it is not a status."""
    cleaned = word.lower().replace("\u2019", "'").replace("-", " ")
    cleaned = re.sub(r"[^a-z0-9' ]+", " ", cleaned)
    cleaned = re.sub(r"\s+", " ", cleaned).strip()
    for value, words in _STATUS_WORDS.items():
        if any(cleaned == w or cleaned.startswith(w + " ") for w in words):
            return value
    return None


def _unescape_cell(cell: str) -> str:
    text = _BREAK.sub("\n", cell.replace("\\|", "|"))
    return _ENTITY.sub(lambda m: _ENTITIES[m.group(1)], text)


def split_row(line: str) -> list[str]:
    """The cells of a table row, unescaped (``\\|`` → ``|``, ``<br>`` → newline,
    ``&lt;`` ``&gt;`` ``&amp;`` → ``<`` ``>`` ``&``)."""
    stripped = line.strip()
    cells = _UNESCAPED_PIPE.split(stripped)
    if stripped.startswith("|"):
        cells = cells[1:]
    if len(cells) > 1 and stripped.endswith("|") and not stripped.endswith("\\|"):
        cells = cells[:-1]
    return [normalize_text(_unescape_cell(cell)) for cell in cells]


def _is_row(line: str) -> bool:
    return bool(line.strip()) and _UNESCAPED_PIPE.search(line) is not None


def _is_alignment(line: str) -> bool:
    cells = split_row(line)
    return bool(cells) and all(_ALIGNMENT_CELL.match(cell.replace(" ", "")) for cell in cells)


def _header_name(cell: str) -> str:
    return re.sub(r"\s+", " ", _EMPHASIS.sub("", cell)).strip().lower()


def _outside_code(lines: list[str]) -> Iterator[tuple[int, str]]:
    """(index, line) of the lines that are not inside a fenced code block."""
    fence = ""
    for index, line in enumerate(lines):
        match = _FENCE.match(line)
        if fence:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = ""
            continue
        if match:
            fence = match.group(1)
            continue
        yield index, line


def parse_actions(text: str, *, strict: bool = True) -> list[ParsedAction]:
    """Every row of every action table in the document, whatever its status.
    ``strict=False`` accepts an unknown type (see the module docstring)."""
    lines = text.splitlines()
    visible = dict(_outside_code(lines))
    actions: list[ParsedAction] = []
    index = 0
    while index < len(lines):
        line = visible.get(index)
        following = visible.get(index + 1)
        if line is None or following is None or not _is_row(line) or not _is_alignment(following):
            index += 1
            continue
        header = [_header_name(cell) for cell in split_row(line)]
        index += 2
        body_start = index
        while index < len(lines) and index in visible and _is_row(lines[index]):
            index += 1
        kind = _table_kind(header)
        if kind is None:
            continue  # some other table: not ours to judge
        alignment = split_row(lines[body_start - 1])
        if len(alignment) != len(header):
            raise TableError(
                body_start,
                f"the alignment row has {len(alignment)} cells but the header has {len(header)}",
            )
        for number in range(body_start, index):
            row = _parse_row(
                header, split_row(lines[number]), number + 1, legacy=kind == "legacy", strict=strict
            )
            if row is not None:
                actions.append(row)
    return actions


def _table_kind(header: list[str]) -> str | None:
    if sorted(header) == sorted(NEW_COLUMNS):
        return "new"
    if sorted(header) == sorted(LEGACY_COLUMNS):
        return "legacy"
    return None


def _parse_row(
    header: list[str], cells: list[str], line: int, *, legacy: bool, strict: bool
) -> ParsedAction | None:
    if len(cells) != len(header):
        expected = " | ".join(name.capitalize() for name in header)
        raise TableError(line, f"expected {len(header)} cells ({expected}), found {len(cells)}")
    if not any(cells):
        return None  # an empty row, as editors leave behind
    row = dict(zip(header, cells, strict=True))
    action = row["action"]
    if not action:
        raise TableError(line, "the Action cell is empty")
    status = parse_status(row["status"])
    if status is None:
        raise TableError(
            line,
            f"unknown status {row['status']!r} for {action!r}: use TODO, In progress, Done "
            "or Won't do",
        )
    if legacy:
        return ParsedAction(
            priority=LEGACY_PRIORITY,
            action=action,
            type=infer_type(action),
            details=row["details"],
            status=status,
            line=line,
            inferred=True,
        )
    priority = canonical_priority(row["priority"])
    if priority is None:
        raise TableError(
            line, f"unknown priority {row['priority']!r} for {action!r}: use P0, P1, P2 or P3"
        )
    action_type = canonical_type(row["type"])
    if action_type is None and strict:
        raise TableError(line, f"{unknown_type_message(row['type'])} (action {action!r})")
    return ParsedAction(
        priority=priority,
        action=action,
        type=action_type or row["type"],
        details=row["details"],
        status=status,
        line=line,
        unknown_type=action_type is None,
    )


def action_json(item: ActionLike) -> dict[str, Any]:
    return {
        "priority": item.priority,
        "action": item.action,
        "type": item.type,
        "details": item.details,
        "safe": is_safe(item.type),
    }


def todo_report(file: str, items: Iterable[ActionLike]) -> dict[str, Any]:
    """The JSON shape automation reads: pending items only (TODO / In progress),
    the safe ones in ``todos`` and the ones needing review in ``skipped``, in
    document order."""
    pending = [item for item in items if item.status in PENDING_STATUSES]
    todos = [action_json(item) for item in pending if is_safe(item.type)]
    skipped = [action_json(item) for item in pending if not is_safe(item.type)]
    return {
        "file": file,
        "todos": todos,
        "skipped": skipped,
        "safe_todos": len(todos),
        "skipped_todos": len(skipped),
    }


def parse_report(text: str, file: str) -> dict[str, Any]:
    """``todo_report`` for a Markdown document; raises ``TableError``."""
    return todo_report(file, parse_actions(text))


def escape_cell(text: str) -> str:
    """Text made safe for one table cell; ``split_row`` reverses it."""
    text = normalize_text(text).replace("&", "&amp;").replace("<", "&lt;")
    return text.replace("|", "\\|").replace("\n", "<br>")
