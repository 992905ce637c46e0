"""manage.py export_postmortems DIR: published post-mortems as Markdown files.

Writes ``YYYY-MM-DD-slug.md`` for each published post-mortem and an
``index.html`` listing them (the same list as the public /postmortems/ page),
ready for a static site: each file is the public document, as anonymous
readers get it (no timeline, no owner, no Follow-up Implementation table).
``--internal`` writes the whole documents instead, for operators' own
archive. Files already in DIR are overwritten; other files are left alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.template.loader import render_to_string

from postmortems import document, selectors


class Command(BaseCommand):
    help = "Write published post-mortems to DIR as YYYY-MM-DD-slug.md, plus an index.html."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", metavar="DIR")
        parser.add_argument(
            "--internal",
            action="store_true",
            help="Whole documents, with the timeline and people: not for a public site.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        folder = Path(options["directory"])
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CommandError(f"{folder}: cannot create the folder: {exc.strerror}") from None
        entries = []
        for post_mortem in selectors.published_postmortems():
            name = document.export_filename(post_mortem)
            items = selectors.action_items(post_mortem)
            text = document.postmortem_markdown(post_mortem, items, public=not options["internal"])
            self._write(folder / name, text)
            entries.append((post_mortem, name))
        self._write(
            folder / "index.html",
            render_to_string("postmortems/export_index.html", {"entries": entries}),
        )
        self.stdout.write(f"Wrote {len(entries)} post-mortem(s) and index.html to {folder}")

    def _write(self, path: Path, text: str) -> None:
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"{path}: cannot write: {exc.strerror}") from None
