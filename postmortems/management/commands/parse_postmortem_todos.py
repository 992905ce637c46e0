"""manage.py parse_postmortem_todos FILE...: pending follow-ups as JSON.

One file prints one JSON object; several files print a JSON array of objects,
in the order given. A malformed action table (or an unreadable file) prints
``FILE:LINE: message`` on stderr for every bad file, nothing on stdout, and
exits with status 1. A row whose type is none of the seven known ones is not
malformed: the post-mortem pipeline treats whatever it cannot classify as
unsafe, so the row is reported under ``skipped`` with ``"safe": false`` and a
``FILE:LINE: warning: ...`` line on stderr; ``--strict`` makes it an error as
before. The table formats and the type keywords are described in
``postmortems.markdown_tables``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from postmortems.markdown_tables import TableError, parse_actions, todo_report
from postmortems.vocabulary import UNKNOWN_TYPE_HINT


class Command(BaseCommand):
    help = (
        "Print the pending (TODO / In progress) follow-ups of post-mortem Markdown files as "
        "JSON: safe ones (Alert, Config, Monitor) in 'todos', the rest in 'skipped'."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE")
        parser.add_argument(
            "--strict",
            action="store_true",
            help="Refuse a file with a type outside the seven known ones (exit 1) instead of "
            "reporting the row as skipped and not safe.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        reports, errors, warnings = [], [], []
        for name in options["files"]:
            try:
                text = Path(name).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                errors.append(f"{name}: cannot read: {getattr(exc, 'strerror', None) or exc}")
                continue
            try:
                actions = parse_actions(text, strict=options["strict"])
            except TableError as exc:
                errors.append(f"{name}:{exc.line}: {exc.message}")
                continue
            reports.append(todo_report(name, actions))
            warnings += [
                f"{name}:{row.line}: warning: unknown type {row.type!r} for {row.action!r}: "
                f"treated as not safe to automate (pending rows go under 'skipped'). "
                f"{UNKNOWN_TYPE_HINT}"
                for row in actions
                if row.unknown_type
            ]
        if errors:
            for error in errors:
                self.stderr.write(error)
            sys.exit(1)
        for warning in warnings:
            self.stderr.write(warning)
        result: Any = reports[0] if len(reports) == 1 else reports
        self.stdout.write(json.dumps(result, indent=2, ensure_ascii=False))
