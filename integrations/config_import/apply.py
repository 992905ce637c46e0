"""Write a ``Source`` into triage: the one service that changes anything.

One transaction for the whole import, so a failure half-way writes nothing;
a dry run does the same work and rolls it back, so its plan is exactly what a
real run would do (names made unique, what is new and what is updated).

Re-runs: every object made from an object of the old system is recorded in
``ImportSource`` (system, kind, old id) → triage row, and the next run
updates that row. Rotations, overrides and levels are recorded under their
parent's id, so the ones the old system no longer has are removed. Nothing
triage-made is ever changed: a name already taken by something not imported
gets the old system's name plus " (from <system>)".

Concurrency: two imports from the same system at once would both try to
record the same (system, kind, id); the unique constraint makes the second
fail and roll back whole, so no object is made twice.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib.auth.models import User
from django.db import models, transaction
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.text import slugify

from incidents.models import Service
from integrations.config_import.plan import (
    LevelPlan,
    OverridePlan,
    PolicyPlan,
    RotationPlan,
    SchedulePlan,
    ServicePlan,
    Skipped,
    Source,
)
from integrations.keys import NewKey, create_integration
from integrations.models import ImportSource, Integration
from paging.models import (
    EscalationLevel,
    EscalationPolicy,
    Override,
    Rotation,
    RotationMember,
    Schedule,
)

M = TypeVar("M", bound=models.Model)


@dataclass(frozen=True)
class Action:
    verb: str  # "create", "update" or "keep"
    kind: str  # "schedule", "escalation policy", "service", "integration"
    name: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.verb:<7} {self.kind} {self.name!r}" + (
            f" ({self.detail})" if self.detail else ""
        )


@dataclass
class Report:
    label: str
    dry_run: bool
    matched: list[tuple[str, str]] = field(default_factory=list)  # (email, triage username)
    actions: list[Action] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    new_keys: list[NewKey] = field(default_factory=list)
    kept_keys: list[Integration] = field(default_factory=list)


class _Run:
    def __init__(self, source: Source, report: Report, now: datetime) -> None:
        self.source = source
        self.report = report
        self.now = now
        self.suffix = f" (from {source.label})"
        self.users: dict[str, User] = {}
        self.unmatched: dict[str, str] = {}  # old id -> email or name
        self.uses: dict[str, list[str]] = defaultdict(list)  # old user id -> where it was dropped
        self.schedules: dict[str, Schedule] = {}
        self.policies: dict[str, EscalationPolicy] = {}

    # --- bookkeeping ------------------------------------------------------------

    def _recorded(self, kind: str, source_id: str, model: type[M]) -> M | None:
        row = ImportSource.objects.filter(
            system=self.source.system, kind=kind, source_id=source_id
        ).first()
        if row is None:
            return None
        found = model._default_manager.filter(pk=row.object_id).first()
        if found is None:  # deleted in triage since: the next record replaces this one
            row.delete()
        return found

    def _record(self, kind: str, source_id: str, obj: models.Model) -> None:
        ImportSource.objects.update_or_create(
            system=self.source.system,
            kind=kind,
            source_id=source_id,
            defaults={"object_id": obj.pk},
        )

    def _remove_stale(
        self, kind: str, prefix: str, keep: set[str], model: type[models.Model]
    ) -> None:
        stale = ImportSource.objects.filter(
            system=self.source.system, kind=kind, source_id__startswith=prefix
        ).exclude(source_id__in=keep)
        model._default_manager.filter(pk__in=[row.object_id for row in stale]).delete()
        stale.delete()

    def _free(self, model: type[models.Model], field_name: str, wanted: str, pk: Any) -> str:
        """``wanted``, or it with the suffix (and a number) when something else has it."""
        taken = model._default_manager.exclude(pk=pk)
        limit = 100  # every name and slug field imported into is 100 long
        candidates = [wanted, wanted + self.suffix] + [
            f"{wanted} ({self.source.label} {n})" for n in range(2, 100)
        ]
        for candidate in candidates:
            if field_name == "slug":
                candidate = slugify(candidate)[:limit] or "imported"
            candidate = candidate[:limit]
            if not taken.filter(**{field_name: candidate}).exists():
                return candidate
        return f"{wanted[: limit - 12]} {self.now:%H%M%S%f}"  # pragma: no cover

    # --- people -----------------------------------------------------------------

    def match_people(self) -> None:
        by_email: dict[str, list[User]] = defaultdict(list)
        emails = [person.email.lower() for person in self.source.people if person.email]
        users = User.objects.annotate(lower_email=Lower("email"))
        for user in users.filter(is_active=True, lower_email__in=emails).order_by("pk"):
            by_email[user.email.lower()].append(user)
        for person in self.source.people:
            found = by_email.get(person.email.lower(), []) if person.email else []
            if len(found) == 1:
                self.users[person.source_id] = found[0]
                self.report.matched.append((person.email, found[0].get_username()))
            else:
                self.unmatched[person.source_id] = person.email or person.name or person.source_id
                if len(found) > 1:
                    self.uses[person.source_id].insert(0, "several triage users have this email")

    def _people(self, ids: list[str], where: str) -> list[User]:
        found: list[User] = []
        for old_id in ids:
            user = self.users.get(old_id)
            if user is None:
                self.unmatched.setdefault(old_id, old_id)
                self.uses[old_id].append(where)
            elif user not in found:
                found.append(user)
        return found

    def report_unmatched(self) -> None:
        for old_id, who in self.unmatched.items():
            uses = self.uses.get(old_id, [])
            reason = "no active triage user with this email"
            if uses and uses[0] == "several triage users have this email":
                reason, uses = uses[0], uses[1:]
            where = f"; left out of {', '.join(uses)}" if uses else ""
            self.report.skipped.append(
                Skipped(f"user {who}", f"{reason}{where} (add them and run the import again)")
            )

    # --- schedules --------------------------------------------------------------

    def schedule(self, plan: SchedulePlan) -> None:
        zone = plan.time_zone or "UTC"
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            self.report.skipped.append(
                Skipped(f"schedule {plan.name!r}", f"unknown time zone {zone!r}; UTC is used")
            )
            zone = "UTC"
        schedule = self._recorded("schedule", plan.source_id, Schedule)
        verb = "update" if schedule else "create"
        if schedule is None:
            schedule = Schedule(slug=self._free(Schedule, "slug", plan.name, None))
        schedule.name = self._free(Schedule, "name", plan.name, schedule.pk)
        schedule.time_zone = zone
        schedule.description = plan.description or schedule.description
        schedule.save()
        self._record("schedule", plan.source_id, schedule)
        self.schedules[plan.source_id] = schedule
        prefix = f"{plan.source_id}/"
        rotations = [self._rotation(schedule, prefix, rotation) for rotation in plan.rotations]
        self._remove_stale(
            "rotation", prefix, {prefix + r.source_id for r in plan.rotations if r}, Rotation
        )
        overrides = sum(self._override(schedule, prefix, o) for o in plan.overrides)
        self._remove_stale(
            "override", prefix, {prefix + o.source_id for o in plan.overrides}, Override
        )
        detail = f"{sum(rotations)} rotation(s), {overrides} override(s), time zone {zone}"
        self.report.actions.append(Action(verb, "schedule", schedule.name, detail))

    def _rotation(self, schedule: Schedule, prefix: str, plan: RotationPlan) -> bool:
        where = f"rotation {plan.name!r} of schedule {schedule.name!r}"
        members = []
        for old_id in plan.members:  # a person may hold several turns: keep every turn
            user = self.users.get(old_id)
            if user is None:
                self._people([old_id], where)
            else:
                members.append(user)
        key = prefix + plan.source_id
        rotation = self._recorded("rotation", key, Rotation)
        if not members:
            if rotation is not None:
                rotation.delete()
            self.report.skipped.append(Skipped(where, "nobody in it is a triage user"))
            return False
        rotation = rotation or Rotation(schedule=schedule)
        rotation.schedule = schedule
        rotation.name = plan.name[:100]
        rotation.start = plan.start
        rotation.shift_length = plan.shift_length
        rotation.shift_unit = plan.shift_unit
        rotation.save()
        rotation.members.all().delete()
        RotationMember.objects.bulk_create(
            RotationMember(rotation=rotation, user=user, position=position)
            for position, user in enumerate(members)
        )
        self._record("rotation", key, rotation)
        return True

    def _override(self, schedule: Schedule, prefix: str, plan: OverridePlan) -> bool:
        key = prefix + plan.source_id
        override = self._recorded("override", key, Override)
        people = self._people([plan.user], f"an override of schedule {schedule.name!r}")
        if not people:
            if override is not None:
                override.delete()
            return False
        override = override or Override(schedule=schedule, user=people[0])
        override.user = people[0]
        override.start, override.end = plan.start, plan.end
        override.save()
        self._record("override", key, override)
        return True

    # --- escalation policies ----------------------------------------------------

    def policy(self, plan: PolicyPlan) -> None:
        policy = self._recorded("policy", plan.source_id, EscalationPolicy)
        verb = "update" if policy else "create"
        policy = policy or EscalationPolicy()
        policy.name = self._free(EscalationPolicy, "name", plan.name, policy.pk)
        policy.repeat_count = plan.repeat_count
        policy.save()
        self._record("policy", plan.source_id, policy)
        self.policies[plan.source_id] = policy
        prefix = f"{plan.source_id}#"
        kept: set[str] = set()
        previous: EscalationLevel | None = None
        waited = 0  # minutes of levels left out since the last one kept
        for number, level_plan in enumerate(plan.levels, 1):
            key = prefix + str(len(kept))
            level = self._level(policy, key, level_plan, number, len(kept))
            if level is None:
                waited += level_plan.delay_minutes
                continue
            if previous is not None and waited:
                # The waits of the levels left out still pass before this one.
                previous.delay_minutes += waited
                previous.save(update_fields=["delay_minutes"])
            kept.add(key)
            previous, waited = level, 0
        self._remove_stale("level", prefix, kept, EscalationLevel)
        detail = f"{len(kept)} level(s)" + (
            f", repeats {plan.repeat_count} time(s)" if plan.repeat_count else ""
        )
        self.report.actions.append(Action(verb, "escalation policy", policy.name, detail))

    def _level(
        self, policy: EscalationPolicy, key: str, plan: LevelPlan, number: int, position: int
    ) -> EscalationLevel | None:
        """Level ``number`` of the old policy, as triage's level ``position``."""
        where = f"level {number} of policy {policy.name!r}"
        users = self._people(plan.users, where)
        schedules = []
        for old_id in plan.schedules:
            schedule = self.schedules.get(old_id)
            if schedule is None:
                self.report.skipped.append(
                    Skipped(f"{where}: schedule {old_id}", "that schedule was not imported")
                )
            else:
                schedules.append(schedule)
        if not users and not schedules:
            self.report.skipped.append(Skipped(where, "it would page nobody in triage"))
            return None
        level = self._recorded("level", key, EscalationLevel) or EscalationLevel(policy=policy)
        level.position = position
        level.delay_minutes = max(1, plan.delay_minutes)
        level.save()
        level.users.set(users)
        level.schedules.set(schedules)
        self._record("level", key, level)
        return level

    # --- services ---------------------------------------------------------------

    def service(self, plan: ServicePlan) -> None:
        service = self._recorded("service", plan.source_id, Service)
        verb = "update" if service else "create"
        if service is None:
            service = Service(slug=self._free(Service, "slug", plan.name, None))
        service.name = self._free(Service, "name", plan.name, service.pk)
        service.description = plan.description or service.description
        policy = self.policies.get(plan.policy) if plan.policy else None
        if plan.policy and policy is None:
            self.report.skipped.append(
                Skipped(
                    f"service {plan.name!r}: escalation policy {plan.policy}",
                    "that policy was not imported; the service pages nobody until you pick one",
                )
            )
        service.escalation_policy = policy
        service.ack_timeout_minutes = plan.ack_timeout_minutes
        service.save()
        self._record("service", plan.source_id, service)
        detail = f"escalation policy {policy.name!r}" if policy else "no escalation policy"
        self.report.actions.append(Action(verb, "service", service.name, detail))
        for integration_plan in plan.integrations:
            integration = self._recorded("integration", integration_plan.source_id, Integration)
            if integration is not None:
                # Keys are shown once: the one made by the first run stays.
                self.report.kept_keys.append(integration)
                continue
            new = create_integration(
                service=service,
                kind=integration_plan.kind,
                name=integration_plan.name[:100],
            )
            self._record("integration", integration_plan.source_id, new.integration)
            self.report.new_keys.append(new)


def apply(source: Source, *, dry_run: bool = False, now: datetime | None = None) -> Report:
    """Create or update everything in ``source`` in one transaction, rolled
    back for a dry run (whose keys then work nowhere and must not be shown)."""
    report = Report(label=source.label, dry_run=dry_run, skipped=list(source.skipped))
    run = _Run(source, report, now or timezone.now())
    with transaction.atomic():
        run.match_people()
        for schedule in source.schedules:
            run.schedule(schedule)
        for policy in source.policies:
            run.policy(policy)
        for service in source.services:
            run.service(service)
        run.report_unmatched()
        if dry_run:
            transaction.set_rollback(True)
    return report
