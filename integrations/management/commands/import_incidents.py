"""`manage.py import_incidents FILE`: bring incidents over from another system.

See integrations.importer for the columns. Validates every row first and
reports all problems with row numbers; imports all rows in one transaction
(nothing on failure) unless --continue-on-error; --dry-run writes nothing.
Re-running with the same file imports nothing twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from incidents.models import Service
from integrations import importer
from triage.errors import DomainError


class Command(BaseCommand):
    help = "Import incidents from a CSV or JSON export (see docs/integrations.md for columns)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--service", help="Slug of the service for rows without one.")
        parser.add_argument(
            "--format", choices=("csv", "json"), default="", help="Default: from the file name."
        )
        parser.add_argument(
            "--namespace",
            default="legacy",
            help="Name of the old system; ids are unique within it (default: legacy).",
        )
        parser.add_argument(
            "--max-bytes",
            type=int,
            default=importer.MAX_BYTES,
            help=f"Refuse a larger file (default: {importer.MAX_BYTES:,}, 10 MB).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Validate and report only.")
        parser.add_argument(
            "--continue-on-error",
            action="store_true",
            help="Import the valid rows and skip the invalid ones (default: all or nothing).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["max_bytes"] < 1:
            raise CommandError("--max-bytes must be at least 1.")
        default_service = None
        if options["service"]:
            default_service = Service.objects.filter(slug=options["service"]).first()
            if default_service is None:
                raise CommandError(f"No service with slug {options['service']!r}.")
        try:
            records = importer.read_records(
                options["file"], options["format"], max_bytes=options["max_bytes"]
            )
        except importer.ImportFileError as exc:
            raise CommandError(str(exc)) from None
        namespace: str = options["namespace"]
        plan = importer.plan(records, namespace=namespace, default_service=default_service)
        for error in plan.errors:
            self.stderr.write(str(error))
        if plan.errors and not options["continue_on_error"]:
            self._summary(plan, imported=0, verb="would import" if options["dry_run"] else None)
            raise CommandError(
                f"{len(plan.errors)} invalid row(s); nothing was imported. Fix them, or use "
                "--continue-on-error to import the valid rows."
            )
        if options["dry_run"]:
            self._summary(plan, imported=len(plan.rows), verb="would import")
            return
        if options["continue_on_error"]:
            imported = self._each_on_its_own(plan, namespace)
        else:
            with transaction.atomic():
                imported = sum(importer.import_row(row, namespace) is not None for row in plan.rows)
        self._summary(plan, imported=imported, verb="imported")

    def _each_on_its_own(self, plan: importer.Plan, namespace: str) -> int:
        imported = 0
        for row in plan.rows:
            try:
                imported += importer.import_row(row, namespace) is not None
            except DomainError as exc:
                plan.errors.append(importer.RowError(row.number, exc.detail))
                self.stderr.write(str(plan.errors[-1]))
        return imported

    def _summary(self, plan: importer.Plan, *, imported: int, verb: str | None) -> None:
        done = f"{imported} {verb}" if verb else "0 imported"
        self.stdout.write(
            f"{plan.total} row(s) read: {done}, {len(plan.already)} already imported, "
            f"{len(plan.errors)} invalid."
        )
