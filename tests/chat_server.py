"""A local stand-in for Slack's Web API and Mattermost's REST API v4.

It answers in the shapes the vendors document (Slack: ``{"ok": true, ...}``
from ``/api/<method>``; Mattermost: the post or user object from
``/api/v4/...``) and records every call, so tests see exactly what triage
posted. Slack lives under ``/slack/api/``, Mattermost under ``/mattermost``.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SLACK_TOKEN = "xoxb-test-bot-token"
MATTERMOST_TOKEN = "mattermost-bot-token"


@dataclass
class ChatServer:
    slack_url: str
    mattermost_url: str
    calls: list[dict[str, Any]] = field(default_factory=list)
    # Slack user objects (users.info) and Mattermost user objects, by id.
    slack_users: dict[str, dict[str, Any]] = field(default_factory=dict)
    mattermost_users: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_next: int = 0  # answer this many calls with HTTP 503 first
    lock: threading.Lock = field(default_factory=threading.Lock)

    def called(self, method: str) -> list[dict[str, Any]]:
        with self.lock:
            return [call for call in self.calls if call["method"] == method]


@contextmanager
def chat_server() -> Iterator[ChatServer]:
    box: list[ChatServer] = []
    numbers = itertools.count(1)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            server = box[0]
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            if server.fail_next:
                server.fail_next -= 1
                self._answer(503, {"ok": False, "error": "service_unavailable"})
                return
            if url.path.startswith("/slack/api/"):
                self._slack(server, url.path.removeprefix("/slack/api/"), url.query, raw)
            elif url.path.startswith("/mattermost/api/v4/"):
                self._mattermost(server, url.path.removeprefix("/mattermost/api/v4/"), raw)
            else:
                self._answer(404, {"error": "not found"})

        def _record(self, server: ChatServer, method: str, body: dict[str, Any]) -> None:
            with server.lock:
                server.calls.append(
                    {"method": method, "auth": self.headers.get("Authorization", ""), **body}
                )

        def _slack(self, server: ChatServer, method: str, query: str, raw: bytes) -> None:
            if self.headers.get("Authorization") != f"Bearer {SLACK_TOKEN}":
                self._answer(200, {"ok": False, "error": "invalid_auth"})
                return
            if self.command == "GET":
                body = {k: v[0] for k, v in parse_qs(query).items()}
            elif self.headers.get("Content-Type", "").startswith("application/json"):
                body = json.loads(raw)
            else:
                body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            self._record(server, method, body)
            if method == "chat.postMessage":
                ts = f"1700000000.{next(numbers):06d}"
                self._answer(200, {"ok": True, "channel": body["channel"], "ts": ts})
            elif method == "chat.update":
                self._answer(200, {"ok": True, "channel": body["channel"], "ts": body["ts"]})
            elif method == "chat.postEphemeral":
                self._answer(200, {"ok": True, "message_ts": f"1700000001.{next(numbers):06d}"})
            elif method == "users.info":
                user = server.slack_users.get(body.get("user", ""))
                if user is None:
                    self._answer(200, {"ok": False, "error": "user_not_found"})
                else:
                    self._answer(200, {"ok": True, "user": user})
            else:
                self._answer(200, {"ok": False, "error": "unknown_method"})

        def _mattermost(self, server: ChatServer, path: str, raw: bytes) -> None:
            if self.headers.get("Authorization") != f"Bearer {MATTERMOST_TOKEN}":
                self._answer(401, {"id": "api.context.session_expired.app_error"})
                return
            body = json.loads(raw) if raw else {}
            if self.command == "POST" and path == "posts":
                post_id = f"post{next(numbers):022d}"
                self._record(server, "POST posts", body)
                self._answer(201, {**body, "id": post_id})
            elif self.command == "PUT" and path.startswith("posts/"):
                self._record(server, "PUT posts", {"path_id": path.split("/")[1], **body})
                self._answer(200, body)
            elif self.command == "GET" and path.startswith("users/"):
                self._record(server, "GET users", {"path_id": path.split("/")[1]})
                user = server.mattermost_users.get(path.split("/")[1])
                if user is None:
                    self._answer(404, {"id": "app.user.missing_account.const"})
                else:
                    self._answer(200, user)
            else:
                self._answer(404, {"id": "api.context.404.app_error"})

        do_GET = do_POST = do_PUT = _handle

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{server.server_port}"
    box.append(ChatServer(slack_url=f"{base}/slack/api/", mattermost_url=f"{base}/mattermost"))
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield box[0]
    finally:
        server.shutdown()
        server.server_close()
