"""Read a PagerDuty account through REST API v2 with PagerDuty's own client.

``pagerduty.RestApiV2Client`` pages through lists (``offset``/``limit``/
``more``) and waits and asks again when the API answers 429 (rate limited).
Read: ``users``, ``schedules`` (each fetched whole for its layers) and the
overrides of the next 90 days, ``escalation_policies``, and ``services``
with their integrations.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pagerduty

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

API_URL = "https://api.pagerduty.com"
OVERRIDE_DAYS = 90
# The client's first wait after a 429 (it doubles each time) and how many
# 429s in a row it takes before giving up (its default is never).
FIRST_RETRY_SECONDS = 1.5
RATE_LIMIT_ATTEMPTS = 8

TURN_UNITS = ((ShiftUnit.WEEKS, 604800), (ShiftUnit.DAYS, 86400), (ShiftUnit.HOURS, 3600))
EVENTS_TYPES = {
    "events_api_v2_inbound_integration": "",
    "generic_events_api_inbound_integration": (
        "an Events API v1 integration: the sender must move to Events API v2"
    ),
}


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _ref(value: Any) -> str:
    return str(value.get("id") or "") if isinstance(value, dict) else ""


class _Reader:
    def __init__(self, client: pagerduty.RestApiV2Client, now: datetime) -> None:
        self.client = client
        self.now = now
        self.source = Source(system="pagerduty", label="PagerDuty")

    def _all(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        for item in self.client.iter_all(path, params=params or None):
            if isinstance(item, dict):
                yield item

    def read(self) -> Source:
        for user in self._all("users"):
            self.source.people.append(
                Person(
                    str(user.get("id")), str(user.get("email") or ""), str(user.get("name") or "")
                )
            )
        for listed in self._all("schedules"):
            schedule = self.client.rget(f"schedules/{listed.get('id')}")
            if isinstance(schedule, dict):
                self._schedule(schedule)
        for policy in self._all("escalation_policies"):
            self._policy(policy)
        for service in self._all("services", **{"include[]": ["integrations"]}):
            self._service(service)
        return self.source

    def _schedule(self, data: dict[str, Any]) -> None:
        schedule_id = str(data.get("id"))
        name = str(data.get("name") or schedule_id)
        plan = SchedulePlan(
            schedule_id,
            name,
            time_zone=str(data.get("time_zone") or "UTC"),
            description=str(data.get("description") or ""),
        )
        layers = [layer for layer in data.get("schedule_layers") or [] if isinstance(layer, dict)]
        for layer in layers:
            self._layer(plan, layer)
        if len(layers) > 1:
            self.source.skip(
                f"schedule {name!r}: layers",
                "PagerDuty pages the highest layer on call; triage pages everyone on call in "
                "any rotation",
            )
        overrides = self.client.rget(
            f"schedules/{schedule_id}/overrides",
            params={
                "since": self.now.isoformat(),
                "until": (self.now + timedelta(days=OVERRIDE_DAYS)).isoformat(),
            },
        )
        for override in overrides if isinstance(overrides, list) else []:
            start, end = _time(override.get("start")), _time(override.get("end"))
            user = _ref(override.get("user"))
            if start and end and end > start and user:
                plan.overrides.append(OverridePlan(str(override.get("id")), user, start, end))
        self.source.schedules.append(plan)

    def _layer(self, plan: SchedulePlan, layer: dict[str, Any]) -> None:
        layer_id = str(layer.get("id"))
        name = str(layer.get("name") or layer_id)
        what = f"layer {name!r} of schedule {plan.name!r}"
        end = _time(layer.get("end"))
        if end is not None and end <= self.now:
            return  # ended
        start = _time(layer.get("rotation_virtual_start")) or _time(layer.get("start"))
        turn = layer.get("rotation_turn_length_seconds")
        members = [
            _ref(entry.get("user")) for entry in layer.get("users") or [] if isinstance(entry, dict)
        ]
        members = [member for member in members if member]
        if start is None or not isinstance(turn, int) or turn <= 0 or not members:
            self.source.skip(what, "it has no start, turn length or users")
            return
        units = [(u, s) for u, s in TURN_UNITS if turn % s == 0]
        if not units:
            self.source.skip(
                what, f"turns of {turn} s: triage hands off in whole hours; create it by hand"
            )
            return
        unit, seconds = units[0]
        if layer.get("restrictions"):
            self.source.skip(
                f"{what}: restrictions",
                "triage rotations cover the whole turn; the layer is imported without them",
            )
        if end is not None:
            self.source.skip(
                f"{what}: end", f"it ends {end:%Y-%m-%d %H:%M} UTC; triage rotations do not end"
            )
        plan.rotations.append(RotationPlan(layer_id, name, start, turn // seconds, unit, members))

    def _policy(self, data: dict[str, Any]) -> None:
        name = str(data.get("name") or data.get("id"))
        loops = data.get("num_loops")
        plan = PolicyPlan(
            str(data.get("id")), name, repeat_count=loops if isinstance(loops, int) else 0
        )
        for rule in data.get("escalation_rules") or []:
            if not isinstance(rule, dict):
                continue
            delay = rule.get("escalation_delay_in_minutes")
            level = LevelPlan(delay_minutes=delay if isinstance(delay, int) and delay > 0 else 30)
            for target in rule.get("targets") or []:
                kind = target.get("type", "") if isinstance(target, dict) else ""
                if kind in ("user_reference", "user"):
                    level.users.append(_ref(target))
                elif kind in ("schedule_reference", "schedule"):
                    level.schedules.append(_ref(target))
                else:
                    self.source.skip(
                        f"escalation policy {name!r}: target {_ref(target) or kind}",
                        f"{kind or 'unknown'} targets are not imported",
                    )
            plan.levels.append(level)
        self.source.policies.append(plan)

    def _service(self, data: dict[str, Any]) -> None:
        service_id = str(data.get("id"))
        name = str(data.get("name") or service_id)
        what = f"service {name!r}"
        ack = data.get("acknowledgement_timeout")
        plan = ServicePlan(
            service_id,
            name,
            description=str(data.get("description") or ""),
            policy=_ref(data.get("escalation_policy")) or None,
            ack_timeout_minutes=minutes(ack) if isinstance(ack, int) and ack > 0 else None,
        )
        urgency = data.get("incident_urgency_rule")
        if isinstance(urgency, dict) and (
            urgency.get("type") != "constant" or urgency.get("urgency") != "high"
        ):
            self.source.skip(
                f"{what}: urgency rules",
                "triage has no low urgency: every incident pages as PagerDuty's high urgency",
            )
        if data.get("auto_resolve_timeout"):
            self.source.skip(
                f"{what}: auto-resolve", "triage does not resolve incidents on a timer"
            )
        for integration in data.get("integrations") or []:
            if not isinstance(integration, dict):
                continue
            kind = str(integration.get("type") or "")
            label = str(
                integration.get("name") or integration.get("summary") or integration.get("id")
            )
            if "email" in kind:
                self.source.skip(
                    f"{what}: integration {label!r}", "email integrations are not imported"
                )
                continue
            note = EVENTS_TYPES.get(kind.removesuffix("_reference"), "")
            if note:
                self.source.skip(f"{what}: integration {label!r}", note)
            plan.integrations.append(
                IntegrationPlan(str(integration.get("id")), label, Kind.EVENTS_V2)
            )
        self.source.services.append(plan)


def read(token: str, *, api_url: str = API_URL, now: datetime | None = None) -> Source:
    """Everything the PagerDuty account of ``token`` has, in triage's terms."""
    url = base_url(api_url)
    try:
        client = pagerduty.RestApiV2Client(token, base_url=url)
    except pagerduty.UrlError as exc:
        raise ImportConfigError(f"PagerDuty API URL {url!r}: {exc}") from None
    client.sleep_timer = FIRST_RETRY_SECONDS
    client.retry[429] = RATE_LIMIT_ATTEMPTS
    with guarded(policy_allowing(url)) as outbound, client:
        try:
            return _Reader(client, now or datetime.now(UTC)).read()
        except pagerduty.HttpError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status in (401, 403):
                raise ImportConfigError(
                    f"PagerDuty refused the token (HTTP {status}). Use a REST API key with "
                    "read access."
                ) from None
            raise ImportConfigError(f"PagerDuty answered HTTP {status}: {exc}") from None
        except pagerduty.Error as exc:
            raise ImportConfigError(
                f"Cannot read from PagerDuty at {url}: {outbound.reason()} ({exc})."
            ) from None
