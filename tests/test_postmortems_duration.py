"""How long an incident lasted and when, as the post-mortem says it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from time_machine import TimeMachineFixture

from incidents import services as incident_services
from postmortems import document
from tests.factories import IncidentFactory
from tests.postmortem_factories import postmortem


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "under a minute"),
        (timedelta(seconds=20), "under a minute"),
        (timedelta(seconds=59), "under a minute"),
        (timedelta(seconds=60), "1m"),
        (timedelta(minutes=7, seconds=30), "7m"),
        (timedelta(hours=1, minutes=23), "1h 23m"),
        (timedelta(hours=2), "2h 0m"),
        (timedelta(days=1, hours=2, minutes=5), "1d 2h 5m"),
        (timedelta(seconds=-5), "under a minute"),  # clocks: never a negative time
    ],
)
def test_durations_read_as_words_a_person_would_say(delta: timedelta, text: str) -> None:
    assert document.format_duration(delta) == text


def at(day: int, hour: int, minute: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def test_a_span_within_a_day_names_the_day_once() -> None:
    assert document.format_span(at(29, 20, 16), at(29, 20, 16)) == "20:16–20:16 UTC, 29 Nov 2026"
    assert document.format_span(at(9, 8, 5), at(9, 17, 40)) == "08:05–17:40 UTC, 9 Nov 2026"


def test_a_span_across_days_names_both(settings: Any) -> None:
    assert (
        document.format_span(at(29, 23, 50), at(30, 0, 10))
        == "29 Nov 2026 23:50 – 30 Nov 2026 00:10 UTC"
    )
    settings.TIME_ZONE = "Europe/Berlin"
    # 23:30 UTC is already the next day in Berlin: the day is the local one.
    assert document.format_span(at(29, 23, 30), at(29, 23, 45)) == "00:30–00:45 CET, 30 Nov 2026"
    # Across a DST change each time says which offset it is in.
    assert (
        document.format_span(at(29, 0, 30, month=3), at(29, 2, 0, month=3))
        == "29 Mar 2026 01:30 CET – 29 Mar 2026 04:00 CEST"
    )


@pytest.mark.django_db
def test_a_short_incident_reads_sensibly_on_the_page_and_in_the_markdown(
    alice_client: Client, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(datetime(2026, 11, 29, 20, 16, 5, tzinfo=UTC), tick=False)
    incident = IncidentFactory()
    time_machine.shift(timedelta(seconds=20))
    incident_services.resolve_incident(incident, actor=None)
    pm = postmortem(incident)

    page = alice_client.get(f"/postmortems/{pm.pk}").content.decode()
    assert "<dd>under a minute (20:16–20:16 UTC, 29 Nov 2026)</dd>" in page
    assert "0m" not in page
    markdown = alice_client.get(f"/postmortems/{pm.pk}.md").content.decode()
    assert "- **Duration:** under a minute (20:16–20:16 UTC, 29 Nov 2026)" in markdown
