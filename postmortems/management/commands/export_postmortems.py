"""manage.py export_postmortems DIR: published post-mortems as Markdown files.

Writes ``YYYY-MM-DD-slug.md`` for each published post-mortem and an
``index.html`` listing them (the same list as the public /postmortems/ page),
ready for a static site. Files already in DIR are overwritten; other files
are left alone.
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

    def handle(self, *args: Any, **options: Any) -> None:
        folder = Path(options["directory"])
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CommandError(f"{folder}: cannot create the folder: {exc.strerror}") from None
        entries = []
        for post_mortem in selectors.published_postmortems():
            name = document.export_filename(post_mortem)
            text = document.postmortem_markdown(post_mortem, selectors.action_items(post_mortem))
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
