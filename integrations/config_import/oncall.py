"""Read a Grafana OnCall configuration through its public API v1.

Endpoints (each paginated: ``count``/``next``/``results``, ``perpage`` up to
100): ``users``, ``schedules`` (types ``web``, ``calendar``, ``ical``),
``on_call_shifts`` (rotations, single and recurrent events, overrides),
``escalation_chains`` with their ``escalation_policies`` (the steps), and
``integrations`` with their ``routes``. iCal schedules have no shifts in the
API: their final shifts of the next four weeks (``final_shifts``) become
overrides. The token goes in ``Authorization`` as OnCall documents it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from integrations.config_import.http import base_url, policy_allowing
from integrations.config_import.plan import (
    ImportConfigError,
    IntegrationPlan,
    LevelPlan,
    OverridePlan,
    Person,
    PolicyPlan,
    RotationPlan,
    SchedulePlan,
    ServicePlan,
    Source,
    minutes,
)
from integrations.models import Kind
from paging.models import ShiftUnit
from triage.outbound import guarded

PAGE_SIZE = 100
MAX_PAGES = 1000  # 100,000 objects of one kind: a `next` that never ends stops here
RATE_LIMIT_ATTEMPTS = 5
MAX_WAIT_SECONDS = 60
ICAL_WEEKS = 4

UNITS = {"hourly": (ShiftUnit.HOURS, 3600), "daily": (ShiftUnit.DAYS, 86400)}
UNITS["weekly"] = (ShiftUnit.WEEKS, 7 * 86400)

# OnCall integration types whose senders post Alertmanager's webhook body, and
# Grafana's (Alertmanager's with "version": "1" and Grafana's fields), which
# goes to triage's Grafana kind where there is one.
ALERTMANAGER_TYPES = {"alertmanager", "legacy_alertmanager"}
GRAFANA_TYPES = {"grafana_alerting", "legacy_grafana_alerting", "grafana"}
GRAFANA_KIND = Kind("grafana") if "grafana" in Kind.values else Kind.ALERTMANAGER
NO_SENDER_TYPES = {"direct_paging", "manual", "inbound_email", "email", "slack_channel"}

STEP_REASONS = {
    "resolve": "triage does not resolve incidents on a timer",
    "trigger_webhook": "outgoing webhooks are not imported",
    "trigger_action": "outgoing webhooks are not imported",
    "notify_whole_channel": "Slack channels are set up in triage's chat settings (docs/chat.md)",
    "notify_user_group": "Slack user groups are not imported; add the people to the level",
    "notify_team_members": "OnCall teams are not imported; add the people to the level",
    "notify_if_time_from_to": (
        "triage levels have no time conditions; the steps after it are imported unconditionally"
    ),
    "notify_if_num_alerts_in_window": (
        "triage levels have no alert-count conditions; the steps after it are imported "
        "unconditionally"
    ),
    "declare_incident": "Grafana Incident is not part of triage",
}


class OnCallApi:
    def __init__(self, url: str, token: str) -> None:
        self.url = base_url(url, strip="/api/v1")
        self.policy = policy_allowing(self.url)
        self.session = requests.Session()
        self.session.headers.update({"Authorization": token, "Accept": "application/json"})

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.url}/api/v1/{path}"
        for _attempt in range(RATE_LIMIT_ATTEMPTS):
            with guarded(self.policy) as outbound:
                try:
                    response = self.session.get(
                        url, params=params, timeout=30, allow_redirects=False
                    )
                except requests.RequestException:
                    raise ImportConfigError(
                        f"Cannot reach Grafana OnCall at {self.url}: {outbound.reason()}."
                    ) from None
            if response.status_code != 429:
                break
            # OnCall's throttle says how long to wait (Retry-After, and its own
            # RateLimit-Reset); the import waits and asks again.
            time.sleep(_wait_seconds(response.headers))
        if response.status_code in (401, 403):
            raise ImportConfigError(
                f"Grafana OnCall refused the token (HTTP {response.status_code} from /api/v1/"
                f"{path}). Use an OnCall API token (OnCall → Settings) with read access."
            )
        if response.status_code != 200:
            raise ImportConfigError(
                f"Grafana OnCall answered HTTP {response.status_code} to /api/v1/{path}."
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ImportConfigError(f"Grafana OnCall's answer to /api/v1/{path} is not JSON.")
        return body

    def list(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every object of a paginated list, following ``next`` page by page."""
        items: list[dict[str, Any]] = []
        query: dict[str, Any] = {**params, "perpage": PAGE_SIZE}
        for _page in range(MAX_PAGES):
            body = self._get(path, query)
            results = body.get("results")
            if not isinstance(results, list):
                raise ImportConfigError(
                    f"Grafana OnCall's answer to /api/v1/{path} has no list of results."
                )
            items.extend(item for item in results if isinstance(item, dict))
            following = body.get("next")
            if not following or not isinstance(following, str):
                return items
            query = _query_of(following)
        raise ImportConfigError(f"/api/v1/{path} has more than {MAX_PAGES} pages.")


def _query_of(url: str) -> dict[str, Any]:
    # Only the query of `next`: OnCall builds it from its own idea of its
    # address, which may not be the one the admin reaches it by, and a host in
    # an answer must never receive the token.
    return dict(parse_qsl(urlsplit(url).query))


def _wait_seconds(headers: Any) -> float:
    for name in ("Retry-After", "RateLimit-Reset"):
        try:
            return float(min(max(int(headers.get(name, "")), 0), MAX_WAIT_SECONDS))
        except ValueError:
            continue
    return 1.0


def _time(value: Any) -> datetime | None:
    # OnCall writes shift times as "2020-09-10T08:00:00" in UTC.
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _ids(value: Any) -> list[str]:
    return (
        [str(item) for item in value if isinstance(item, (str, int))]
        if isinstance(value, list)
        else []
    )


class _Reader:
    def __init__(self, api: OnCallApi, now: datetime) -> None:
        self.api = api
        self.now = now
        self.source = Source(system="oncall", label="Grafana OnCall")

    def read(self) -> Source:
        for user in self.api.list("users/"):
            self.source.people.append(
                Person(
                    str(user.get("id")),
                    str(user.get("email") or ""),
                    str(user.get("username") or ""),
                )
            )
        shifts = self.api.list("on_call_shifts/")
        for schedule in self.api.list("schedules/"):
            self._schedule(schedule, shifts)
        steps: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for step in self.api.list("escalation_policies/"):
            steps[str(step.get("escalation_chain_id"))].append(step)
        for chain in self.api.list("escalation_chains/"):
            chain_id = str(chain.get("id"))
            ordered = sorted(steps[chain_id], key=lambda s: s.get("position") or 0)
            self._chain(chain_id, str(chain.get("name") or chain_id), ordered)
        routes: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for route in self.api.list("routes/"):
            routes[str(route.get("integration_id"))].append(route)
        for integration in self.api.list("integrations/"):
            self._integration(integration, routes[str(integration.get("id"))])
        return self.source

    # --- schedules --------------------------------------------------------------

    def _schedule(self, data: dict[str, Any], shifts: list[dict[str, Any]]) -> None:
        schedule_id = str(data.get("id"))
        name = str(data.get("name") or schedule_id)
        kind = data.get("type")
        plan = SchedulePlan(schedule_id, name, time_zone=str(data.get("time_zone") or "UTC"))
        what = f"schedule {name!r}"
        if data.get("ical_url_overrides"):
            self.source.skip(
                f"{what}: overrides calendar",
                "iCal override calendars are not followed; add overrides in triage",
            )
        if kind == "ical":
            self._final_shifts(plan)
            plan.description = "Imported from an iCal schedule: the next four weeks as overrides."
            self.source.skip(
                what,
                f"an iCal schedule: its shifts of the next {ICAL_WEEKS} weeks are imported as "
                "overrides; later changes to the calendar are not followed",
            )
        else:
            listed = set(_ids(data.get("shifts")))
            mine = [
                s for s in shifts if str(s.get("schedule")) == schedule_id or s.get("id") in listed
            ]
            for shift in mine:
                self._shift(plan, shift)
            if (
                len({shift.get("level") or 0 for shift in mine if shift.get("type") != "override"})
                > 1
            ):
                self.source.skip(
                    f"{what}: layer priorities",
                    "OnCall pages the highest level on call; triage pages everyone on call in "
                    "any rotation",
                )
        self.source.schedules.append(plan)

    def _final_shifts(self, plan: SchedulePlan) -> None:
        end = self.now + timedelta(weeks=ICAL_WEEKS)
        for shift in self.api.list(
            f"schedules/{plan.source_id}/final_shifts",
            start_date=self.now.date().isoformat(),
            end_date=end.date().isoformat(),
        ):
            start, stop = _time(shift.get("shift_start")), _time(shift.get("shift_end"))
            if start and stop and stop > max(start, self.now) and shift.get("user_pk"):
                user = str(shift["user_pk"])
                plan.overrides.append(
                    OverridePlan(f"final/{user}/{start.isoformat()}", user, start, stop)
                )

    def _shift(self, plan: SchedulePlan, shift: dict[str, Any]) -> None:
        shift_id = str(shift.get("id"))
        name = str(shift.get("name") or shift_id)
        what = f"shift {name!r} of schedule {plan.name!r}"
        kind = shift.get("type")
        start = _time(shift.get("start"))
        duration = shift.get("duration")
        if start is None or not isinstance(duration, int) or duration <= 0:
            self.source.skip(what, "it has no start or duration")
            return
        if kind in ("override", "single_event"):
            end = start + timedelta(seconds=duration)
            if end <= self.now:
                return  # over: nothing to bring
            if kind == "single_event":
                self.source.skip(
                    what,
                    "a single event: imported as an override, which replaces the rotations "
                    "while it lasts",
                )
            for user in _ids(shift.get("users")):
                plan.overrides.append(OverridePlan(f"{shift_id}/{user}", user, start, end))
            return
        if kind not in ("rolling_users", "recurrent_event"):
            self.source.skip(what, f"unknown shift type {kind!r}")
            return
        until = _time(shift.get("until"))
        if until is not None and until <= self.now:
            return  # ended
        frequency = shift.get("frequency")
        if frequency not in UNITS:
            self.source.skip(
                what,
                f"{frequency or 'no'} frequency: triage rotations hand off every N hours, "
                "days or weeks; create it by hand",
            )
            return
        unit, seconds = UNITS[frequency]
        given = shift.get("interval")
        interval = max(1, given) if isinstance(given, int) else 1
        if kind == "rolling_users":
            groups = [_ids(group) for group in shift.get("rolling_users") or [] if _ids(group)]
        else:
            groups = [_ids(shift.get("users"))] if _ids(shift.get("users")) else []
        if not groups:
            self.source.skip(what, "it has nobody in it")
            return
        first = shift.get("start_rotation_from_user_index")
        if isinstance(first, int) and 0 < first < len(groups):
            groups = groups[first:] + groups[:first]
        self._limits(what, shift, duration, seconds * interval, until)
        # OnCall hands over to a group of people at once; triage rotations hand
        # over to one person each. Rotation k takes the k-th person of every
        # group (or the group's first when it is smaller), so everyone in the
        # current group is on call, and nobody else.
        width = max(len(group) for group in groups)
        for slot in range(width):
            members = [group[slot] if slot < len(group) else group[0] for group in groups]
            plan.rotations.append(
                RotationPlan(
                    source_id=f"{shift_id}/{slot}",
                    name=name if width == 1 else f"{name} ({slot + 1})",
                    start=start,
                    shift_length=interval,
                    shift_unit=unit,
                    members=members,
                )
            )

    def _limits(
        self, what: str, shift: dict[str, Any], duration: int, period: int, until: datetime | None
    ) -> None:
        days = shift.get("by_day") or []
        if (days and len(set(days)) < 7) or shift.get("by_month") or shift.get("by_monthday"):
            self.source.skip(
                f"{what}: day restrictions",
                "triage rotations cover every day; the rotation is imported without them",
            )
        if duration < period:
            hours = f"{duration / 3600:g} h"
            self.source.skip(
                f"{what}: shift length",
                f"each turn is on call for {hours} of every {period / 3600:g} h; triage "
                "rotations cover the whole turn",
            )
        if until is not None:
            self.source.skip(
                f"{what}: end", f"it ends {until:%Y-%m-%d %H:%M} UTC; triage rotations do not end"
            )

    # --- escalation -------------------------------------------------------------

    def _chain(self, chain_id: str, name: str, steps: list[dict[str, Any]]) -> None:
        plan = PolicyPlan(chain_id, name)
        level: LevelPlan | None = None
        for number, step in enumerate(steps, 1):
            kind = step.get("type")
            what = f"step {number} ({kind}) of escalation chain {name!r}"
            if kind == "wait":
                delay = minutes(step.get("duration") or 60)
                if level is not None:
                    level.delay_minutes = delay
                    plan.levels.append(level)
                    level = None
                elif plan.levels:
                    plan.levels[-1].delay_minutes += delay
                else:
                    self.source.skip(
                        what,
                        "a wait before anyone is notified: triage pages the first level at once",
                    )
            elif kind in (
                "notify_persons",
                "notify_person_next_each_time",
                "notify_on_call_from_schedule",
            ):
                level = level or LevelPlan()
                level.users += _ids(step.get("persons_to_notify"))
                level.users += _ids(step.get("persons_to_notify_next_each_time"))
                if step.get("notify_on_call_from_schedule"):
                    level.schedules.append(str(step["notify_on_call_from_schedule"]))
                if kind == "notify_person_next_each_time":
                    self.source.skip(
                        what, "triage has no round robin: everyone in it is paged each time"
                    )
            elif kind == "repeat_escalation":
                plan.repeat_count = 5  # OnCall repeats a chain at most five times
            else:
                self.source.skip(what, STEP_REASONS.get(str(kind), "unknown step type"))
        if level is not None:
            plan.levels.append(level)
        self.source.policies.append(plan)

    # --- integrations -----------------------------------------------------------

    def _integration(self, data: dict[str, Any], routes: list[dict[str, Any]]) -> None:
        integration_id = str(data.get("id"))
        name = str(data.get("name") or integration_id)
        kind = str(data.get("type") or "")
        what = f"integration {name!r}"
        if kind in NO_SENDER_TYPES:
            self.source.skip(what, f"a {kind} integration has no sender to move; not imported")
            return
        default = data.get("default_route") if isinstance(data.get("default_route"), dict) else {}
        chain = default.get("escalation_chain_id") if default else None
        service = ServicePlan(
            integration_id,
            name,
            description=str(data.get("description_short") or ""),
            policy=str(chain) if chain else None,
        )
        if kind in ALERTMANAGER_TYPES:
            integration_kind = Kind.ALERTMANAGER
        elif kind in GRAFANA_TYPES:
            integration_kind = GRAFANA_KIND
        elif kind == "pagerduty":
            integration_kind = Kind.EVENTS_V2
        else:
            integration_kind = Kind.EVENTS_V2
            self.source.skip(
                f"{what}: {kind} payloads",
                "triage has no free-form webhook: the new key takes Events API v2 events, so "
                "the sender must send those",
            )
        service.integrations.append(IntegrationPlan(integration_id, name, integration_kind))
        templates = sorted(_set_templates(data.get("templates")))
        if templates:
            self.source.skip(
                f"{what}: templates {', '.join(templates)}",
                "Jinja templates are not imported; triage groups, titles and resolves from the "
                "sender's own fields",
            )
        for route in routes:
            if route.get("is_the_last_route"):
                continue
            how = route.get("routing_type") or "regex"
            self.source.skip(
                f"{what}: route {route.get('routing_regex')!r} ({how})",
                "triage has no routing rules: every alert goes to the default route's "
                "escalation chain",
            )
        self.source.services.append(service)


def _set_templates(value: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _set_templates(inner, f"{prefix}{key}.")
    elif value not in (None, ""):
        yield prefix.rstrip(".")


def read(url: str, token: str, *, now: datetime | None = None) -> Source:
    """Everything the OnCall instance at ``url`` has, in triage's terms."""
    return _Reader(OnCallApi(url, token), now or datetime.now(UTC)).read()
