"""The MCP server, driven by the official SDK's own clients: in-process,
over HTTP at /mcp, and over stdio (`manage.py mcp`)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx2
import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.test import Client as DjangoClient
from mcp import Client
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from pytest_django.live_server_helper import LiveServer
from redis import Redis

from accounts.tokens import NewToken
from incidents.models import EventKind, Incident, Service, Status
from incidents.services import resolve_incident
from integrations.mcp_server import Principal, acting_as, build_server
from paging.models import Rotation, RotationMember, Schedule
from tests.factories import IncidentFactory
from tests.processes import ROOT, app_env

pytestmark = pytest.mark.django_db

T = TypeVar("T")
READ_TOOLS = {
    "list_open_incidents",
    "search_incidents",
    "get_incident",
    "list_services",
    "who_is_on_call",
}
WRITE_TOOLS = {"acknowledge_incident", "escalate_incident", "add_note", "resolve_incident"}


def run(coroutine: Callable[[], Awaitable[T]]) -> T:
    # async_to_sync keeps the tools' database work on this thread, inside the
    # test's transaction.
    return async_to_sync(coroutine)()


def run_elsewhere(coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a client in a thread of its own, with its own event loop.

    For the tests whose server is another thread or process: they need no
    transaction shared with this thread, and this thread may already run an
    event loop (Playwright's, in a whole-suite run).
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(coroutine())
        except BaseException as exc:  # handed over to the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(120)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def call(server: Any, name: str, arguments: dict[str, Any] | None = None) -> Any:
    async def go() -> Any:
        async with Client(server) as client:
            return await client.call_tool(name, arguments or {})

    return run(go)


def tool_names(server: Any) -> set[str]:
    async def go() -> set[str]:
        async with Client(server) as client:
            return {tool.name for tool in (await client.list_tools()).tools}

    return run(go)


@pytest.fixture
def incident(web: Service, redis: Redis) -> Incident:
    return IncidentFactory(service=web, title="Checkout returns 502", severity="critical")


def test_write_tools_are_off_unless_enabled(settings: Any) -> None:
    assert settings.MCP_WRITE_TOOLS is False
    assert tool_names(build_server()) == READ_TOOLS
    assert tool_names(build_server(write_tools=True)) == READ_TOOLS | WRITE_TOOLS


def test_the_read_tools_show_what_the_api_shows(alice: User, incident: Incident) -> None:
    server = build_server()
    with acting_as(Principal(user=alice, can_write=False)):
        listed = call(server, "list_open_incidents")
        one = call(server, "get_incident", {"incident_id": incident.pk})
        services = call(server, "list_services")
    assert not listed.is_error
    first = listed.structured_content["incidents"][0]
    assert first["title"] == "Checkout returns 502"
    assert first["paging"]["level"] == 0
    assert first["links"]["ui"].endswith(f"/incidents/{incident.pk}")
    assert [event["kind"] for event in one.structured_content["timeline"]] == ["opened", "paged"]
    assert services.structured_content["services"][0]["slug"] == "web"


def test_a_missing_incident_is_a_tool_error(alice: User, db: None) -> None:
    with acting_as(Principal(user=alice, can_write=True)):
        result = call(build_server(write_tools=True), "get_incident", {"incident_id": 424242})
        acked = call(build_server(write_tools=True), "acknowledge_incident", {"incident_id": 42})
    assert result.is_error
    assert "No incident #424242" in result.content[0].text
    assert acked.is_error


def test_write_tools_change_the_incident_as_the_user(alice: User, incident: Incident) -> None:
    server = build_server(write_tools=True)
    with acting_as(Principal(user=alice, can_write=True)):
        acked = call(server, "acknowledge_incident", {"incident_id": incident.pk})
        call(server, "add_note", {"incident_id": incident.pk, "text": "rolling back"})
        again = call(server, "acknowledge_incident", {"incident_id": incident.pk})
        resolved = call(server, "resolve_incident", {"incident_id": incident.pk})
    assert acked.structured_content["status"] == "acknowledged"
    assert acked.structured_content["acknowledged_by"] == "alice"
    assert again.is_error
    assert "cannot be acknowledged" in again.content[0].text
    assert resolved.structured_content["status"] == "resolved"
    note = incident.timeline.get(kind=EventKind.NOTE)
    assert (note.message, note.actor) == ("rolling back", alice)


def test_escalating_a_resolved_incident_is_a_clear_tool_error(
    alice: User, incident: Incident
) -> None:
    resolve_incident(incident, actor=alice)
    with acting_as(Principal(user=alice, can_write=True)):
        result = call(
            build_server(write_tools=True), "escalate_incident", {"incident_id": incident.pk}
        )
    assert result.is_error
    assert "resolved" in result.content[0].text


def test_a_read_only_principal_cannot_use_write_tools(alice: User, incident: Incident) -> None:
    with acting_as(Principal(user=alice, can_write=False)):
        result = call(
            build_server(write_tools=True), "resolve_incident", {"incident_id": incident.pk}
        )
    assert result.is_error
    assert "write" in result.content[0].text
    incident.refresh_from_db()
    assert incident.status == Status.TRIGGERED


def test_without_a_principal_tools_refuse(db: None) -> None:
    result = call(build_server(), "list_services")
    assert result.is_error


def test_bad_arguments_are_a_tool_error(alice: User, db: None) -> None:
    with acting_as(Principal(user=alice, can_write=True)):
        result = call(build_server(write_tools=True), "add_note", {"incident_id": 1, "text": ""})
    assert result.is_error


# --- over HTTP: /mcp --------------------------------------------------------


def rpc(client: DjangoClient, token: NewToken | None, method: str, params: dict[str, Any]) -> Any:
    headers = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-06-18",
    }
    if token is not None:
        headers["Authorization"] = f"Bearer {token.raw}"
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    return client.post(
        "/mcp", data=json.dumps(body), content_type="application/json", headers=headers
    )


def test_mcp_over_http_needs_a_token(client: DjangoClient) -> None:
    response = rpc(client, None, "tools/list", {})
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_mcp_over_http_answers_tool_calls_as_the_token_owner(
    client: DjangoClient, read_token: NewToken, incident: Incident
) -> None:
    listed = rpc(client, read_token, "tools/list", {})
    assert listed.status_code == 200
    assert {tool["name"] for tool in listed.json()["result"]["tools"]} == READ_TOOLS
    called = rpc(
        client,
        read_token,
        "tools/call",
        {"name": "get_incident", "arguments": {"incident_id": incident.pk}},
    )
    result = called.json()["result"]
    assert result["structuredContent"]["title"] == "Checkout returns 502"


def test_a_read_token_cannot_use_write_tools_over_http(
    client: DjangoClient, read_token: NewToken, incident: Incident, settings: Any
) -> None:
    settings.MCP_WRITE_TOOLS = True
    called = rpc(
        client,
        read_token,
        "tools/call",
        {"name": "resolve_incident", "arguments": {"incident_id": incident.pk}},
    )
    assert called.json()["result"]["isError"] is True
    incident.refresh_from_db()
    assert incident.status == Status.TRIGGERED


def test_with_write_tools_off_a_write_tool_says_how_to_turn_them_on(
    client: DjangoClient, alice: User, write_token: NewToken, incident: Incident
) -> None:
    with acting_as(Principal(user=alice, can_write=True)):
        in_process = call(build_server(), "acknowledge_incident", {"incident_id": incident.pk})
    over_http = rpc(
        client,
        write_token,
        "tools/call",
        {"name": "acknowledge_incident", "arguments": {"incident_id": incident.pk}},
    ).json()["result"]
    assert in_process.is_error
    assert over_http["isError"] is True
    for text in (in_process.content[0].text, over_http["content"][0]["text"]):
        assert "Unknown tool" not in text
        assert "write tools are disabled on this triage server" in text
        assert "MCP_WRITE_TOOLS=true" in text
        assert "--write-tools" in text
    incident.refresh_from_db()
    assert incident.status == Status.TRIGGERED
    unknown = call(build_server(), "drop_database", {})
    assert unknown.content[0].text == "Unknown tool: drop_database"


def docs_client_example() -> str:
    """The Python MCP client shown in docs/integrations.md, as printed there."""
    text = (ROOT / "docs" / "integrations.md").read_text()
    after = text.split("A client with the official Python SDK", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_documented_client_example_runs_against_triage(
    live_server: LiveServer, read_token: NewToken, incident: Incident
) -> None:
    example = docs_client_example()
    assert "f\"Bearer {os.environ['TRIAGE_TOKEN']}\"" in example
    ran = subprocess.run(  # the docs' code, unchanged, as a user would run it
        [sys.executable, "-c", example],
        env={**os.environ, "TRIAGE_URL": live_server.url, "TRIAGE_TOKEN": read_token.raw},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    listed = ran.stdout.splitlines()
    assert set(listed[0].removeprefix("tools: ").split(", ")) == READ_TOOLS
    assert listed[1] == f"#{incident.number} critical Checkout returns 502"


def test_get_is_not_offered_on_the_stateless_endpoint(client: DjangoClient) -> None:
    response = client.get("/mcp")
    assert response.status_code == 405
    assert response["Allow"] == "POST"


def test_an_oversized_mcp_request_is_a_413(client: DjangoClient, read_token: NewToken) -> None:
    response = rpc(client, read_token, "tools/list", {"padding": "x" * 600_000})
    assert response.status_code == 413


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_sdk_client_works_over_http(
    live_server: LiveServer, write_token: NewToken, incident: Incident, settings: Any
) -> None:
    settings.MCP_WRITE_TOOLS = True

    async def go() -> tuple[set[str], Any]:
        headers = {"Authorization": f"Bearer {write_token.raw}"}
        async with httpx2.AsyncClient(headers=headers, timeout=10) as http:
            transport = streamable_http_client(f"{live_server.url}/mcp", http_client=http)
            async with transport as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                tools = {tool.name for tool in (await session.list_tools()).tools}
                result = await session.call_tool(
                    "acknowledge_incident", {"incident_id": incident.pk}
                )
                return tools, result

    tools, result = run_elsewhere(go)
    assert tools == READ_TOOLS | WRITE_TOOLS
    assert result.structured_content["status"] == "acknowledged"
    incident.refresh_from_db()
    assert incident.acknowledged_by is not None
    assert incident.acknowledged_by.username == "alice"


# --- over stdio: manage.py mcp ----------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_round_trip_over_stdio(alice: User, incident: Incident) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=[str(ROOT / "manage.py"), "mcp", "--user", "alice"],
        env=app_env(MCP_WRITE_TOOLS="true"),
        cwd=str(ROOT),
    )

    async def go() -> tuple[set[str], Any, Any]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = {tool.name for tool in (await session.list_tools()).tools}
            listed = await session.call_tool("list_open_incidents", {"limit": 5})
            noted = await session.call_tool(
                "add_note", {"incident_id": incident.pk, "text": "seen from the agent"}
            )
            return tools, listed, noted

    tools, listed, noted = run_elsewhere(go)
    assert tools == READ_TOOLS | WRITE_TOOLS
    assert listed.structured_content["incidents"][0]["id"] == incident.pk
    assert not noted.is_error
    note = incident.timeline.get(kind=EventKind.NOTE)
    assert note.actor == alice
    assert note.message == "seen from the agent"


def test_the_command_needs_a_user(db: None) -> None:
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="--user"):
        call_command("mcp")
    with pytest.raises(CommandError, match="No active user 'nobody'"):
        call_command("mcp", "--user", "nobody")


def test_who_is_on_call_over_mcp(alice: User, db: None) -> None:
    schedule = Schedule.objects.create(name="Ops", slug="ops", time_zone="UTC")
    rotation = Rotation.objects.create(
        schedule=schedule, name="primary", start=datetime(2026, 1, 1, tzinfo=UTC), shift_length=1
    )
    RotationMember.objects.create(rotation=rotation, user=alice, position=0)
    server = build_server()
    with acting_as(Principal(user=alice, can_write=False)):
        answer = call(server, "who_is_on_call", {"schedule": "ops", "at": "2026-02-01T00:00Z"})
        unknown = call(server, "who_is_on_call", {"schedule": "nope"})
        garbled = call(server, "who_is_on_call", {"at": "soon"})
    assert not answer.is_error
    [ops] = answer.structured_content["schedules"]
    assert [person["username"] for person in ops["on_call"]] == ["alice"]
    assert unknown.is_error
    assert "No schedule with slug 'nope'" in unknown.content[0].text
    assert garbled.is_error
    assert "not an ISO 8601 time" in garbled.content[0].text
