"""What an import brings over, in triage's terms, before anything is written.

Each reader (``oncall``, ``pagerduty``) turns the old system's objects into a
``Source``: people by email, schedules with rotations and overrides,
escalation policies with levels, services with integrations. Everything that
has no place in triage is a ``Skipped`` entry with the reason, so the person
moving sees exactly what did not come over. ``apply`` then writes the source
in one transaction. Ids are the old system's, kept as they are: they are what
makes a second run update instead of duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


class ImportConfigError(Exception):
    """The import cannot run at all (bad URL, refused token, unreadable answer)."""


@dataclass(frozen=True)
class Person:
    source_id: str
    email: str
    name: str


@dataclass
class RotationPlan:
    source_id: str
    name: str
    start: datetime
    shift_length: int
    shift_unit: str  # paging.models.ShiftUnit
    members: list[str]  # the old system's user ids, in turn order


@dataclass
class OverridePlan:
    source_id: str
    user: str
    start: datetime
    end: datetime


@dataclass
class SchedulePlan:
    source_id: str
    name: str
    time_zone: str = "UTC"
    description: str = ""
    rotations: list[RotationPlan] = field(default_factory=list)
    overrides: list[OverridePlan] = field(default_factory=list)


@dataclass
class LevelPlan:
    delay_minutes: int = 15
    users: list[str] = field(default_factory=list)
    schedules: list[str] = field(default_factory=list)


@dataclass
class PolicyPlan:
    source_id: str
    name: str
    repeat_count: int = 0
    levels: list[LevelPlan] = field(default_factory=list)


@dataclass(frozen=True)
class IntegrationPlan:
    source_id: str
    name: str
    kind: str  # integrations.models.Kind


@dataclass
class ServicePlan:
    source_id: str
    name: str
    description: str = ""
    policy: str | None = None  # the old system's escalation policy id
    ack_timeout_minutes: int | None = None
    integrations: list[IntegrationPlan] = field(default_factory=list)


@dataclass(frozen=True)
class Skipped:
    what: str
    reason: str

    def __str__(self) -> str:
        return f"{self.what}: {self.reason}"


@dataclass
class Source:
    system: str  # "oncall" or "pagerduty": the namespace of the ids
    label: str  # how people call it
    people: list[Person] = field(default_factory=list)
    schedules: list[SchedulePlan] = field(default_factory=list)
    policies: list[PolicyPlan] = field(default_factory=list)
    services: list[ServicePlan] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def skip(self, what: str, reason: str) -> None:
        self.skipped.append(Skipped(what, reason))


def minutes(seconds: float) -> int:
    """Whole minutes, at least one (triage's delays are minutes)."""
    return max(1, -(-int(seconds) // 60))
