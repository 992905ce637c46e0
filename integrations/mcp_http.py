"""``/mcp``: the MCP server over Streamable HTTP, inside the Django (WSGI) app.

Each POST is served on its own by the SDK's transport in stateless JSON mode
(no session to keep between requests, a JSON answer rather than an event
stream), so one WSGI request carries one MCP exchange and any web worker can
answer it. GET (a server-to-client event stream) is not offered: 405, as the
Streamable HTTP spec allows.

Authentication is an API token, ``Authorization: Bearer tri_...``: tools act
as its owner, and only a write token may use the write tools. Host checking
is Django's (ALLOWED_HOSTS); the SDK's own DNS-rebinding check is off because
a browser cannot add the bearer token to a rebound request anyway.
"""

from __future__ import annotations

from typing import Any

import anyio
from asgiref.sync import async_to_sync
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Message

from accounts.models import TokenScope
from accounts.tokens import authenticate_token
from integrations.mcp_server import Principal, acting_as, build_server
from triage.http import MAX_JSON_BODY, BadRequest, problem, read_json

_HOP_BY_HOP = {"connection", "transfer-encoding", "keep-alive"}


def _scope(request: HttpRequest) -> dict[str, Any]:
    headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1", "replace"))
        for name, value in request.headers.items()
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": request.scheme,
        "path": "/mcp",
        "raw_path": b"/mcp",
        "root_path": "",
        "query_string": request.META.get("QUERY_STRING", "").encode("latin-1", "replace"),
        "headers": headers,
        "client": (request.META.get("REMOTE_ADDR", ""), 0),
        "server": (request.get_host(), 0),
    }


async def _serve(
    scope: dict[str, Any], body: bytes, principal: Principal
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Run the SDK's Streamable HTTP app for one request; collect its answer."""
    server = build_server()
    app = server.streamable_http_app(
        json_response=True,
        stateless_http=True,
        max_request_body_size=MAX_JSON_BODY,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    answered = anyio.Event()
    status = 500
    headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()  # the client "disconnects" only once it has its answer
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                answered.set()

    with acting_as(principal):
        async with server.session_manager.run():
            await app(scope, receive, send)
    return status, headers, b"".join(chunks)


def _unauthorized() -> HttpResponse:
    response = problem(401, "Unauthorized", "Send a valid API token: Authorization: Bearer tri_...")
    response["WWW-Authenticate"] = 'Bearer realm="triage"'
    return response


@csrf_exempt
def endpoint(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        refused = problem(
            405, "Method not allowed", "This MCP endpoint is stateless: POST JSON-RPC messages."
        )
        refused["Allow"] = "POST"
        return refused
    kind, _, raw = request.headers.get("Authorization", "").partition(" ")
    token = authenticate_token(raw.strip()) if kind.lower() == "bearer" else None
    if token is None:
        return _unauthorized()
    try:
        read_json(request)  # triage's rules first; the SDK parses the messages itself
    except BadRequest as exc:
        return exc.response()
    principal = Principal(user=token.user, can_write=token.allows(TokenScope.WRITE))
    status, headers, body = async_to_sync(_serve)(_scope(request), request.body, principal)
    response = HttpResponse(body, status=status)
    for name, value in headers:
        header = name.decode("latin-1")
        if header.lower() not in _HOP_BY_HOP and header.lower() != "content-length":
            response[header] = value.decode("latin-1")
    return response
