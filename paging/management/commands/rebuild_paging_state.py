"""Rebuild the Redis paging state from PostgreSQL (safe at any time)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from paging import escalation


class Command(BaseCommand):
    help = "Rebuild Redis paging state (deadline index, live state) from PostgreSQL."

    def handle(self, *args: Any, **options: Any) -> None:
        result = escalation.reconcile()
        self.stdout.write(
            f"Indexed {result['deadlines']} escalation deadline(s); "
            f"started paging for {result['started']} incident(s) that had not paged anyone."
        )
