"""An escalation policy in plain words, for the admin and people reading it.

"page whoever is on call for Primary at once; after 10 min page bob;
after 15 min repeat from the top twice". A level's delay is how long it waits
for an acknowledgement before the next level is paged (``escalation``).
"""

from __future__ import annotations

from itertools import pairwise

from django.contrib.auth.models import User
from django.db.models import Prefetch

from paging.models import EscalationLevel, EscalationPolicy, Schedule

TIMES = {1: "once", 2: "twice"}


def person(user: User) -> str:
    return user.get_full_name() or user.get_username()


def _targets(level: EscalationLevel) -> str:
    names = [person(user) for user in level.users.all()]
    names += [f"whoever is on call for {schedule.name}" for schedule in level.schedules.all()]
    if not names:
        return "nobody (this level names no one)"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def describe_policy(policy: EscalationPolicy) -> str:
    people = Prefetch("users", queryset=User.objects.order_by("first_name", "last_name", "pk"))
    schedules = Prefetch("schedules", queryset=Schedule.objects.order_by("name"))
    levels = list(policy.levels.order_by("position", "pk").prefetch_related(people, schedules))
    if not levels:
        return "pages nobody: add a level"
    parts = [f"page {_targets(levels[0])} at once"]
    for previous, level in pairwise(levels):
        parts.append(f"after {previous.delay_minutes} min page {_targets(level)}")
    if policy.repeat_count:
        times = TIMES.get(policy.repeat_count, f"{policy.repeat_count} times")
        parts.append(f"after {levels[-1].delay_minutes} min repeat from the top {times}")
    return "; ".join(parts)
