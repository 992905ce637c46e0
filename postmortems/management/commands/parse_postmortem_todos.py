"""manage.py parse_postmortem_todos FILE...: pending follow-ups as JSON.

One file prints one JSON object; several files print a JSON array of objects,
in the order given. A malformed action table (or an unreadable file) prints
``FILE:LINE: message`` on stderr for every bad file, nothing on stdout, and
exits with status 1. The table formats and the type keywords are described in
``postmortems.markdown_tables``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from postmortems.markdown_tables import TableError, parse_report


class Command(BaseCommand):
    help = (
        "Print the pending (TODO / In progress) follow-ups of post-mortem Markdown files as "
        "JSON: safe ones (Alert, Config, Monitor) in 'todos', the rest in 'skipped'."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE")

    def handle(self, *args: Any, **options: Any) -> None:
        reports, errors = [], []
        for name in options["files"]:
            try:
                text = Path(name).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                errors.append(f"{name}: cannot read: {getattr(exc, 'strerror', None) or exc}")
                continue
            try:
                reports.append(parse_report(text, name))
            except TableError as exc:
                errors.append(f"{name}:{exc.line}: {exc.message}")
        if errors:
            for error in errors:
                self.stderr.write(error)
            sys.exit(1)
        result: Any = reports[0] if len(reports) == 1 else reports
        self.stdout.write(json.dumps(result, indent=2, ensure_ascii=False))
