"""Request and response shapes of the /v1 API (they make its OpenAPI document)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from ninja import Field, Schema
from pydantic import AfterValidator, ConfigDict, StringConstraints

SeverityName = Literal["critical", "error", "warning", "info"]
StatusName = Literal["triggered", "acknowledged", "resolved"]
SourceName = Literal["ui", "api", "alertmanager", "events_v2", "heartbeat", "report", "import"]


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL characters: refuse them here (a 422)
    # instead of letting the database fail the request (a 500).
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


NoNul = AfterValidator(_no_nul)


def _text(min_length: int, max_length: int) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length)


Title = Annotated[str, _text(1, 200), NoNul]
Details = Annotated[str, _text(0, 20_000), NoNul]
DedupKey = Annotated[str, _text(0, 255), NoNul]
NoteText = Annotated[str, _text(1, 10_000), NoNul]
Slug = Annotated[str, _text(1, 100), NoNul]
SearchTerm = Annotated[str, _text(0, 200), NoNul]
Cursor = Annotated[str, _text(0, 500), NoNul]


def _sane_moment(value: datetime) -> datetime:
    # Schedules are computed up to 60 days past the moment: keep far clear of
    # the calendar's end (an overflow would be a 500).
    if not 1970 <= value.year <= 9000:
        raise ValueError("must be between the years 1970 and 9000")
    return value


Moment = Annotated[datetime, AfterValidator(_sane_moment)]


class Problem(Schema):
    """An RFC 9457 problem (application/problem+json)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: dict[str, list[str]] | None = None


class ServiceRef(Schema):
    slug: str
    name: str


class ServiceOut(ServiceRef):
    description: str


class PagingOut(Schema):
    level: int = Field(description="Escalation level paged now (0: nobody paged yet).")
    next_escalation_at: datetime | None = Field(
        description="When the next level is paged if nobody acknowledges."
    )
    paged: list[str] = Field(description="People paged at the current level.")


class LinksOut(Schema):
    ui: str = Field(description="The incident's page in the web UI.")
    api: str = Field(description="This incident in the API (with its timeline).")


class StormOut(Schema):
    alerts: int = Field(description="Distinct alerts (dedup keys) that joined the storm.")
    triggers: int = Field(description="Every trigger they sent, repeats included.")
    firing: int
    distinct_names: int
    names: list[str] = Field(description="Distinct alert names, alphabetically (at most 50).")
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    ends_at: datetime | None = Field(
        description="When new alerts stop joining it unless another new one arrives first."
    )


class StormAlertOut(Schema):
    dedup_key: str
    name: str
    severity: SeverityName
    source: str
    status: Literal["firing", "resolved", "split"]
    count: int
    first_seen_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None
    split_into: int | None = Field(description="The incident it was split out into.")


class IncidentOut(Schema):
    id: int
    number: int
    title: str
    details: str
    service: ServiceRef
    severity: SeverityName
    severity_label: str
    status: StatusName
    source: str
    dedup_key: str
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    time_to_acknowledge: float | None = Field(
        description="Seconds from `opened_at` to `acknowledged_at`; "
        "null when it has not been acknowledged."
    )
    time_to_resolve: float | None = Field(
        description="Seconds from `opened_at` to `resolved_at`; null while it is open."
    )
    escalation_level: int
    next_escalation_at: datetime | None
    url: str
    is_storm: bool = Field(
        default=False, description='An "Alert storm on <service>" incident (docs/paging.md).'
    )
    storm: StormOut | None = None
    paging: PagingOut
    links: LinksOut


class CreatedIncidentOut(IncidentOut):
    deduplicated: bool = Field(
        description="True when the dedup key joined an incident that was already open."
    )


class TimelineEventOut(Schema):
    kind: str
    actor: str | None
    message: str
    data: dict[str, Any]
    at: datetime


class ChangeLinkOut(Schema):
    href: str
    text: str


class ChangeOut(Schema):
    summary: str
    source: str
    at: datetime = Field(description="When it happened (the sender's timestamp, else arrival).")
    custom_details: dict[str, Any] | None
    links: list[ChangeLinkOut] = Field(description="The change's http(s) links.")


class IncidentDetailOut(IncidentOut):
    timeline: list[TimelineEventOut]
    storm_alerts: list[StormAlertOut] = Field(
        default_factory=list,
        description="A storm's alerts, firing first (at most 500); empty for other incidents.",
    )
    recent_changes: list[ChangeOut] = Field(
        description="Changes to the incident's service (change events) in the 24 hours "
        "before it opened, newest first (at most 20)."
    )


class IncidentPage(Schema):
    items: list[IncidentOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
    next: str | None = Field(description="URL of the next page, or null on the last page.")


class OpenIncidentsPage(IncidentPage):
    count: int = Field(description="Open incidents in all (not only on this page).")


class IncidentIn(Schema):
    model_config = ConfigDict(extra="forbid")

    title: Title
    service: Slug = Field(description="The service's slug.")
    severity: SeverityName = "error"
    details: Details = ""
    dedup_key: DedupKey = Field(
        "", description="An open incident with this key on the service is joined, not duplicated."
    )


class NoteIn(Schema):
    model_config = ConfigDict(extra="forbid")

    text: NoteText


class OpenFilter(Schema):
    limit: int = Field(100, ge=1, le=500)
    cursor: Cursor | None = None


def _sensible_year(value: date) -> date:
    # The dashboard's bounds (incidents.forms): day arithmetic stays in range.
    if not 1970 <= value.year <= 9998:
        raise ValueError("use a year from 1970 to 9998")
    return value


OpenedDate = Annotated[date, AfterValidator(_sensible_year)]


class IncidentFilter(Schema):
    status: Literal["open", "triggered", "acknowledged", "resolved", "all"] | None = Field(
        None, description="`open` is triggered or acknowledged; no status (or `all`): any."
    )
    severity: SeverityName | None = None
    service: Slug | None = Field(None, description="A service slug.")
    source: SourceName | None = None
    q: SearchTerm | None = Field(
        None, description="Words in the title, an exact dedup key, or #number."
    )
    opened_from: OpenedDate | None = Field(
        None,
        alias="from",
        description="Opened on or after this day (YYYY-MM-DD, in the server's time zone).",
    )
    opened_to: OpenedDate | None = Field(
        None,
        alias="to",
        description="Opened on or before this day (YYYY-MM-DD, in the server's time zone).",
    )
    limit: int = Field(50, ge=1, le=200)
    cursor: Cursor | None = None


class PersonOut(Schema):
    username: str
    name: str


class ShiftOut(Schema):
    person: PersonOut
    start: datetime
    end: datetime


class ScheduleOnCallOut(Schema):
    slug: str
    name: str
    time_zone: str
    on_call: list[PersonOut] = Field(description="On call at `at` (one per rotation).")
    next: ShiftOut | None = Field(description="The next shift after the current one.")


class LevelOnCallOut(Schema):
    level: int = Field(description="1 is paged first.")
    delay_minutes: int = Field(description="Minutes before the next level is paged.")
    people: list[PersonOut] = Field(description="Whom this level would page at `at`.")


class PolicyOnCallOut(Schema):
    id: int
    name: str
    repeat_count: int
    levels: list[LevelOnCallOut]


class OnCallOut(Schema):
    at: datetime
    schedules: list[ScheduleOnCallOut]
    policy: PolicyOnCallOut | None


class OnCallFilter(Schema):
    schedule: Slug | None = Field(None, description="A schedule's slug.")
    policy: Annotated[str, _text(1, 100), NoNul] | None = Field(
        None, description="An escalation policy's name or id: who each level would page."
    )
    service: Slug | None = Field(None, description="A service's slug: its escalation policy.")
    at: Moment | None = Field(
        None, description="The moment to ask about (ISO 8601; default now; no zone: TIME_ZONE)."
    )


# --- on-call health (/v1/insights) --------------------------------------------

INSIGHT_RANGES = (7, 30, 90)


def _a_range(value: int) -> int:
    if value not in INSIGHT_RANGES:
        raise ValueError("must be 7, 30 or 90")
    return value


class InsightsFilter(Schema):
    days: Annotated[int, AfterValidator(_a_range)] = Field(
        30,
        description="The last 7, 30 or 90 calendar days, today included (server's time zone).",
        json_schema_extra={"enum": list(INSIGHT_RANGES)},
    )
    service: Slug | None = Field(None, description="A service's slug; none: every service.")


class DayCountOut(Schema):
    date: date
    incidents: int


class DurationsOut(Schema):
    count: int = Field(description="Incidents with this time (acknowledged, or resolved).")
    median_seconds: float | None
    p90_seconds: float | None = Field(description="The 90th percentile (interpolated).")


class NoisyOut(Schema):
    key: str = Field(description="The dedup key, or the title of incidents without one.")
    is_dedup_key: bool
    service: ServiceRef
    incidents: int = Field(description="Incidents it opened in the range.")
    alert_repeats: int = Field(description="Alerts that joined those incidents while open.")
    last_opened_at: datetime


class PersonPagesOut(Schema):
    username: str
    business_hours: int
    nights: int
    weekends: int
    total: int


class ServiceHealthOut(Schema):
    service: ServiceRef
    incidents: int
    acknowledge_median_seconds: float | None
    resolve_median_seconds: float | None
    escalated_past_level_1: int


class BusinessHoursOut(Schema):
    weekdays: str = Field(description="Always Mon-Fri; Saturday and Sunday are weekend.")
    start: str = Field(description="HH:MM, inclusive.")
    end: str = Field(description="HH:MM, exclusive.")
    time_zone: str


class InsightsOut(Schema):
    days: int
    service: ServiceRef | None = Field(description="The service shown, or null for all.")
    start: datetime = Field(description="Local midnight of the first day.")
    as_of: datetime = Field(description="When the figures were read (cached up to 60 s).")
    business_hours: BusinessHoursOut
    incidents: int = Field(description="Incidents opened in the range.")
    incidents_per_day: list[DayCountOut]
    time_to_acknowledge: DurationsOut
    time_to_resolve: DurationsOut
    escalated_past_level_1: int = Field(
        description="Incidents opened in the range that escalated to level 2 or higher."
    )
    noisiest: list[NoisyOut] = Field(description="At most 10, most incidents first.")
    pages_per_person: list[PersonPagesOut] = Field(
        description="One page is one person paged at one escalation step; most pages first."
    )
    services: list[ServiceHealthOut] = Field(
        description="Per service, most incidents first (empty when one service is asked for)."
    )
