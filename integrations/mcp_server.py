"""The MCP server: triage's incidents as tools for AI agents.

Read tools (open incidents, one incident, who is on call, services) are
always there; write tools (acknowledge, escalate, note, resolve) only when
``MCP_WRITE_TOOLS`` is on. Tools act as a principal — the user configured for
``manage.py mcp`` (stdio), or the owner of the API token on ``/mcp`` (HTTP) —
and a read-only token cannot use write tools. Every tool calls the same
selectors and services as the /v1 API.

Tool bodies are synchronous Django code run through ``sync_to_async`` (thread
sensitive): under the HTTP view they run in the request's own thread and
database connection; under stdio in one dedicated thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import close_old_connections
from django.utils import timezone
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from incidents import services
from incidents.models import Incident
from integrations import selectors
from triage.errors import DomainError


@dataclass(frozen=True)
class Principal:
    user: AbstractBaseUser
    can_write: bool


_principal: ContextVar[Principal | None] = ContextVar("triage_mcp_principal", default=None)


@contextlib.contextmanager
def acting_as(principal: Principal) -> Iterator[None]:
    token = _principal.set(principal)
    try:
        yield
    finally:
        _principal.reset(token)


def _who(*, write: bool) -> Principal:
    principal = _principal.get()
    if principal is None:
        raise ToolError("No user to act as: start with `manage.py mcp --user NAME`.")
    if write and not principal.can_write:
        raise ToolError("This token lacks the 'write' scope.")
    return principal


def _incident(incident_id: int) -> Incident:
    try:
        return selectors.incident_for_change(incident_id)
    except Incident.DoesNotExist:
        raise ToolError(f"No incident #{incident_id}.") from None


IncidentId = Annotated[int, Field(ge=1, le=2**63 - 1, description="The incident's number.")]

WRITE_TOOLS = ("acknowledge_incident", "escalate_incident", "add_note", "resolve_incident")
WRITE_TOOLS_OFF = (
    "{name} is a write tool, and write tools are disabled on this triage server. "
    "Its operator enables them with MCP_WRITE_TOOLS=true (or `manage.py mcp --write-tools` "
    "over stdio); over HTTP they also need an API token with the 'write' scope."
)


class _Server(MCPServer):
    """Says why a write tool is missing when write tools are off, where the
    SDK would only say "Unknown tool" (they are still not listed)."""

    def __init__(self, *args: Any, write_tools: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.write_tools = write_tools

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        if name in WRITE_TOOLS and not self.write_tools:
            raise ToolError(WRITE_TOOLS_OFF.format(name=name))
        return await super().call_tool(name, arguments, context)


# --- tool bodies (synchronous Django code) ----------------------------------


def _list_open(limit: int) -> dict[str, Any]:
    _who(write=False)
    page = selectors.open_incidents(limit=limit)
    return {"incidents": page.items, "more": page.next_cursor is not None}


def _day(name: str, value: str | None) -> date | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ToolError(f"{name}: {value!r} is not a date such as 2026-11-30.") from None
    if not 1970 <= day.year <= 9998:  # the dashboard's and /v1's bounds
        raise ToolError(f"{name}: use a year from 1970 to 9998.")
    return day


def _search(
    q: str, status: str, opened_from: str | None, opened_to: str | None, limit: int
) -> dict[str, Any]:
    _who(write=False)
    if "\x00" in q:
        raise ToolError("q must not contain NUL characters.")
    first, last = _day("opened_from", opened_from), _day("opened_to", opened_to)
    if first and last and first > last:
        raise ToolError("opened_to is before opened_from.")
    query = selectors.IncidentQuery(status=status, q=q, opened_from=first, opened_to=last)
    page = selectors.incidents(query, limit=limit)
    return {"incidents": page.items, "more": page.next_cursor is not None}


def _get(incident_id: int) -> dict[str, Any]:
    _who(write=False)
    try:
        return selectors.incident_with_timeline(incident_id)
    except Incident.DoesNotExist:
        raise ToolError(f"No incident #{incident_id}.") from None


def _services() -> dict[str, Any]:
    _who(write=False)
    return {"services": selectors.services()}


def _on_call(schedule: str | None, policy: str | None, at: str | None) -> dict[str, Any]:
    _who(write=False)
    if schedule and policy:
        raise ToolError("Give a schedule or a policy, not both.")
    moment = timezone.now()
    if at:
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            raise ToolError(
                f"{at!r} is not an ISO 8601 time, such as 2026-11-23T03:00:00Z."
            ) from None
        if not 1970 <= moment.year <= 9000:
            raise ToolError("The time must be between the years 1970 and 9000.")
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment, timezone.get_default_timezone())
    found_schedule = found_policy = None
    if schedule:
        found_schedule = selectors.schedule_by_slug(schedule)
        if found_schedule is None:
            raise ToolError(f"No schedule with slug {schedule!r}.")
    if policy:
        found_policy = selectors.policy_by_name_or_id(policy)
        if found_policy is None:
            raise ToolError(f"No escalation policy {policy!r}.")
    return selectors.on_call(at=moment, schedule=found_schedule, policy=found_policy)


def _change(incident_id: int, action: Callable[[Incident, Principal], object]) -> dict[str, Any]:
    principal = _who(write=True)
    try:
        action(_incident(incident_id), principal)
    except DomainError as exc:
        raise ToolError(exc.detail) from None
    return selectors.incident_with_timeline(incident_id)


def _acknowledge(incident_id: int) -> dict[str, Any]:
    return _change(
        incident_id, lambda incident, who: services.acknowledge_incident(incident, actor=who.user)
    )


def _escalate(incident_id: int) -> dict[str, Any]:
    return _change(
        incident_id, lambda incident, who: services.escalate_incident(incident, actor=who.user)
    )


def _resolve(incident_id: int) -> dict[str, Any]:
    return _change(
        incident_id, lambda incident, who: services.resolve_incident(incident, actor=who.user)
    )


def _note(incident_id: int, text: str) -> dict[str, Any]:
    return _change(
        incident_id, lambda incident, who: services.add_note(incident, actor=who.user, text=text)
    )


# --- the server ---------------------------------------------------------------


def build_server(
    *, write_tools: bool | None = None, refresh_connections: bool = False
) -> MCPServer:
    """An MCP server with triage's tools.

    ``refresh_connections``: close stale database connections before each tool
    call — for the long-lived stdio process, which has no request cycle to do it.
    """
    if write_tools is None:
        write_tools = settings.MCP_WRITE_TOOLS

    def run(fn: Callable[..., dict[str, Any]]) -> Callable[..., Any]:
        def body(*args: Any) -> dict[str, Any]:
            if refresh_connections:
                close_old_connections()
            return fn(*args)

        return sync_to_async(body, thread_sensitive=True)

    server = _Server(
        "triage",
        write_tools=write_tools,
        instructions=(
            "triage is an on-call and incident service. Use list_open_incidents to see what is "
            "broken now and who is paged, search_incidents for past ones, get_incident for an "
            "incident's timeline. Incident ids "
            "are the numbers shown as #N."
        ),
    )
    reading = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(annotations=reading)
    async def list_open_incidents(
        limit: Annotated[int, Field(ge=1, le=200, description="At most this many.")] = 50,
    ) -> dict[str, Any]:
        """Open incidents, most severe first: severity, status, who is paged, when the next
        escalation is, and links to the web UI."""
        result: dict[str, Any] = await run(_list_open)(limit)
        return result

    @server.tool(annotations=reading)
    async def search_incidents(
        q: Annotated[
            str, Field(max_length=200, description="Title words, an exact dedup key, or #N.")
        ] = "",
        status: Literal["all", "open", "triggered", "acknowledged", "resolved"] = "all",
        opened_from: Annotated[
            str | None, Field(max_length=10, description="Opened on or after (YYYY-MM-DD).")
        ] = None,
        opened_to: Annotated[
            str | None, Field(max_length=10, description="Opened on or before (YYYY-MM-DD).")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=200, description="At most this many.")] = 20,
    ) -> dict[str, Any]:
        """Past and present incidents, newest first, with /v1/incidents' filters: find
        an earlier incident like this one, or what happened on a given day (days in the
        server's time zone)."""
        result: dict[str, Any] = await run(_search)(q, status, opened_from, opened_to, limit)
        return result

    @server.tool(annotations=reading)
    async def get_incident(incident_id: IncidentId) -> dict[str, Any]:
        """One incident with its full timeline and paging state."""
        result: dict[str, Any] = await run(_get)(incident_id)
        return result

    @server.tool(annotations=reading)
    async def list_services() -> dict[str, Any]:
        """The services incidents belong to."""
        result: dict[str, Any] = await run(_services)()
        return result

    @server.tool(annotations=reading)
    async def who_is_on_call(
        schedule: Annotated[
            str | None, Field(max_length=100, description="A schedule's slug.")
        ] = None,
        policy: Annotated[
            str | None,
            Field(max_length=100, description="An escalation policy's name or id."),
        ] = None,
        at: Annotated[
            str | None, Field(max_length=64, description="ISO 8601 time; default now.")
        ] = None,
    ) -> dict[str, Any]:
        """Who is on call: for a schedule, for each level of an escalation policy, or
        (with neither) for every schedule; now or at a given time."""
        result: dict[str, Any] = await run(_on_call)(schedule, policy, at)
        return result

    if not write_tools:
        return server

    changing = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)

    @server.tool(annotations=changing)
    async def acknowledge_incident(incident_id: IncidentId) -> dict[str, Any]:
        """Acknowledge a triggered incident: you are on it; escalation stops."""
        result: dict[str, Any] = await run(_acknowledge)(incident_id)
        return result

    @server.tool(annotations=changing)
    async def escalate_incident(incident_id: IncidentId) -> dict[str, Any]:
        """Page the next escalation level now."""
        result: dict[str, Any] = await run(_escalate)(incident_id)
        return result

    @server.tool(annotations=changing)
    async def add_note(
        incident_id: IncidentId,
        text: Annotated[str, Field(min_length=1, max_length=10_000, pattern=r"^[^\x00]*$")],
    ) -> dict[str, Any]:
        """Add a note to an incident's timeline."""
        result: dict[str, Any] = await run(_note)(incident_id, text)
        return result

    @server.tool(annotations=changing)
    async def resolve_incident(incident_id: IncidentId) -> dict[str, Any]:
        """Resolve an open incident."""
        result: dict[str, Any] = await run(_resolve)(incident_id)
        return result

    return server
