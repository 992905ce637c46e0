"""Run one escalation pass now, or escalate one incident by hand."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from incidents.models import Incident, Status
from incidents.services import escalate_incident
from paging import escalation
from triage.errors import DomainError


class Command(BaseCommand):
    help = "Escalate everything that is due now (or --incident N right away)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--incident", type=int, help="escalate this incident now")
        parser.add_argument(
            "--dry-run", action="store_true", help="print what would happen, change nothing"
        )

    def handle(self, *args: Any, incident: int | None, dry_run: bool, **options: Any) -> None:
        if incident is not None:
            self._one(incident, dry_run)
            return
        now = timezone.now()
        if dry_run:
            due = Incident.objects.exclude(status=Status.RESOLVED).filter(
                next_escalation_at__lte=now
            )
            for item in due.order_by("next_escalation_at"):
                verb = "re-trigger" if item.status == Status.ACKNOWLEDGED else "escalate"
                self.stdout.write(
                    f"would {verb} #{item.pk} {item.title} "
                    f"(level {item.escalation_level}, due {item.next_escalation_at:%H:%M:%S})"
                )
            self.stdout.write(f"{due.count()} incident(s) due.")
            return
        result = escalation.check(now=now)
        self.stdout.write(", ".join(f"{key}: {value}" for key, value in result.items()))

    def _one(self, pk: int, dry_run: bool) -> None:
        try:
            incident = Incident.objects.select_related("service").get(pk=pk)
        except Incident.DoesNotExist:
            raise CommandError(f"No incident #{pk}.") from None
        if dry_run:
            self.stdout.write(
                f"would escalate #{pk} from level {incident.escalation_level} "
                f"({incident.get_status_display().lower()})"
            )
            return
        try:
            escalated = escalate_incident(incident, actor=None)
        except DomainError as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(f"#{pk} is now at level {escalated.escalation_level}.")
