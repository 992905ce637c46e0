"""Daily roll-ups of on-call health: what the figures of a closed calendar
day (``settings.TIME_ZONE``) are made of, so a range reads ~90 small rows per
service instead of every incident, timeline event and page in it.

What a day's roll-up holds (``insights.rollups`` writes it, ``insights.rolled``
reads it) — only what can no longer change:

- the incidents *opened* that day that were *resolved* by its ``cutoff``
  (an open incident still gets alert repeats, escalations and its times; it
  is read live until it is resolved);
- the pages *sent* that day (a page's person, step and time never change).

The durations are kept exact (every one, in microseconds, sorted), not as a
histogram: medians and 90th percentiles cannot be summed, but the sorted
values of several days merge into the exact percentile the live path gives.
They are stored packed (``pack``: 8 bytes each, little-endian), not as a
``bigint[]``: a 90-day page reads ~190,000 of them, and bytes arrive and
unpack several times faster than an array's text is written and parsed
(docs/performance.md).
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable
from typing import ClassVar

from django.conf import settings
from django.db import models

from incidents.models import Service


def pack(values: Iterable[int]) -> bytes:
    """Microseconds as the bytes ``DayHealth`` keeps (int64, little-endian)."""
    packed = array("q", values)
    if sys.byteorder == "big":  # pragma: no cover  # no such machine here
        packed.byteswap()
    return packed.tobytes()


def unpack(data: bytes | memoryview) -> array[int]:
    values = array("q")
    values.frombytes(data)
    if sys.byteorder == "big":  # pragma: no cover
        values.byteswap()
    return values


class RolledDay(models.Model):
    """A calendar day whose roll-up rows are written (all services at once)."""

    day = models.DateField(unique=True)
    # The TIME_ZONE and BUSINESS_HOURS it was rolled under: a day rolled
    # under other settings is rolled again, never read.
    basis = models.CharField(max_length=100)
    # Resolved incidents up to this moment are in the roll-up; the ones
    # resolved later (or reopened) are read live until the day is re-rolled.
    cutoff = models.DateTimeField()
    rolled_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.day} ({self.basis})"


class DayHealth(models.Model):
    """One service's resolved incidents opened on one day."""

    day = models.DateField()
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="+")
    incidents = models.PositiveIntegerField()
    escalated = models.PositiveIntegerField()
    # Sorted, in microseconds, packed (``pack``): every time to acknowledge
    # (of those that were acknowledged) and to resolve.
    to_acknowledge = models.BinaryField()
    to_resolve = models.BinaryField()

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["day", "service"], name="insights_dayhealth_once")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.service_id}: {self.incidents}"


class DayNoise(models.Model):
    """One dedup key (or, without one, one title) of one service on one day."""

    day = models.DateField(db_index=True)
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="+")
    key = models.TextField()
    is_dedup_key = models.BooleanField()
    incidents = models.PositiveIntegerField()
    alert_repeats = models.PositiveIntegerField()
    last_opened_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.day} {self.key}: {self.incidents}"


class DayPages(models.Model):
    """The pages one person got for one service's incidents on one day."""

    day = models.DateField(db_index=True)
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    business_hours = models.PositiveIntegerField()
    nights = models.PositiveIntegerField()
    weekends = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"{self.day} {self.user_id}"
