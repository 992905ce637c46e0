"""`manage.py import_config oncall|pagerduty`: move schedules, escalation,
services and integration keys over from Grafana OnCall or PagerDuty.

Reads everything first, then writes it in one transaction (nothing on
failure); --dry-run prints the same plan and writes nothing. A second run
updates what the first made. See docs/moving.md.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.config_import import oncall, pagerduty
from integrations.config_import.apply import Report, apply
from integrations.config_import.plan import ImportConfigError, Source
from integrations.config_import.senders import sender_lines


class Command(BaseCommand):
    help = "Import schedules, escalation and services from Grafana OnCall or PagerDuty."

    def add_arguments(self, parser: CommandParser) -> None:
        systems = parser.add_subparsers(dest="system", required=True, metavar="{oncall,pagerduty}")
        from_oncall = systems.add_parser("oncall", help="Grafana OnCall (public API v1)")
        from_oncall.add_argument(
            "--url",
            required=True,
            help="OnCall's API URL (OnCall → Settings), e.g. https://oncall.example.com",
        )
        from_oncall.add_argument("--token", required=True, help="An OnCall API token.")
        from_pd = systems.add_parser("pagerduty", help="PagerDuty (REST API v2)")
        from_pd.add_argument(
            "--token", required=True, help="A PagerDuty REST API key (read-only is enough)."
        )
        from_pd.add_argument(
            "--api-url",
            default=pagerduty.API_URL,
            help=f"REST API base URL (default {pagerduty.API_URL}; EU accounts: https://api.eu.pagerduty.com).",
        )
        for sub in (from_oncall, from_pd):
            sub.add_argument(
                "--dry-run", action="store_true", help="Print the plan; write nothing."
            )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            source = self._read(options)
        except ImportConfigError as exc:
            raise CommandError(f"{exc} Nothing was imported.") from None
        report = apply(source, dry_run=options["dry_run"])
        self._print(report)

    def _read(self, options: dict[str, Any]) -> Source:
        if options["system"] == "oncall":
            return oncall.read(options["url"], options["token"])
        return pagerduty.read(options["token"], api_url=options["api_url"])

    def _print(self, report: Report) -> None:
        write = self.stdout.write
        if report.dry_run:
            write(f"Dry run: what importing from {report.label} would do. Nothing was written.")
        else:
            write(f"Imported from {report.label}.")
        write(f"\nPeople matched by email: {len(report.matched)}")
        for email, username in report.matched:
            write(f"  {email} → {username}")
        write("\nChanges:")
        for action in report.actions:
            write(f"  {action}")
        if report.kept_keys:
            write("\nIntegrations imported before (their keys are unchanged):")
            for integration in report.kept_keys:
                write(f"  {integration.service.name} / {integration}")
        write(f"\nNot imported, or imported differently ({len(report.skipped)}):")
        for skipped in report.skipped:
            write(f"  - {skipped}")
        if report.dry_run:
            if report.new_keys:
                write("\nA real run makes a new integration key for:")
                for new in report.new_keys:
                    write(f"  {new.integration.service.name} / {new.integration.name}")
            return
        if report.new_keys:
            write(
                "\nNew integration keys: paste them into the senders now; they are not shown again."
            )
            for new in report.new_keys:
                write("")
                for line in sender_lines(new):
                    write(f"  {line}")
