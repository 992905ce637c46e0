"""manage.py record_followup POSTMORTEM_ID ITEM_ID --commit SHA --by NAME

Marks an action item done by a commit (and/or ``--link URL``): it then shows
in the Follow-up Implementation table, and a note lands on the incident's
timeline. Running it again with the same commit changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from postmortems import selectors, services
from postmortems.models import ActionItem
from triage.errors import DomainError


class Command(BaseCommand):
    help = "Record the commit or link that implemented a post-mortem action item."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("postmortem_id", type=int, metavar="POSTMORTEM_ID")
        parser.add_argument("item_id", type=int, metavar="ITEM_ID")
        parser.add_argument("--commit", default="", metavar="SHA")
        parser.add_argument("--link", default="", metavar="URL")
        parser.add_argument("--by", required=True, metavar="NAME", dest="implemented_by")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            item = selectors.action_item(options["postmortem_id"], options["item_id"])
        except ActionItem.DoesNotExist:
            raise CommandError(
                f"No action item #{options['item_id']} in post-mortem #{options['postmortem_id']}."
            ) from None
        try:
            recorded = services.record_followup(
                item,
                actor=None,
                implemented_by=options["implemented_by"],
                commit=options["commit"],
                link=options["link"],
            )
        except DomainError as exc:
            raise CommandError(exc.detail) from None
        verb = "Recorded" if recorded.created else "Already recorded"
        self.stdout.write(f"{verb}: {recorded.item.action} is done.")
