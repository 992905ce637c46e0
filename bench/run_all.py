"""`make bench`: every benchmark, one table, each figure beside its target."""

from __future__ import annotations

import alertmanager
import dashboard
import escalation
import ingest
import insights_page
import memory
import storm
from common import Figure, print_table


def main() -> None:
    figures: list[Figure] = []
    figures += dashboard.run()
    figures += escalation.run()
    figures += ingest.run()
    figures += alertmanager.run()
    figures += storm.run()
    figures += insights_page.run()
    figures += memory.run()
    print_table("triage benchmarks", figures)


if __name__ == "__main__":
    main()
