"""A tiny HTTP server standing in for a chat/push service in tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Receiver:
    url: str  # an apprise json:// URL pointing at this server
    messages: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0  # answer this many requests with 500 first
    hang_next: int = 0  # hold this many requests open until `release` is set
    hanging: threading.Event = field(default_factory=threading.Event)  # one is held
    release: threading.Event = field(default_factory=threading.Event)
    redirect_to: str = ""  # answer every request with a 302 to this URL
    requests: int = 0  # every request that reached this server, answered or not


@contextmanager
def receiver(host: str = "127.0.0.1") -> Iterator[Receiver]:
    box: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def redirected(self) -> bool:
            box[0].requests += 1
            if not box[0].redirect_to:
                return False
            self.send_response(302)
            self.send_header("Location", box[0].redirect_to)
            self.end_headers()
            return True

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            target = box[0]
            if self.redirected():
                return
            if target.hang_next:
                target.hang_next -= 1
                target.hanging.set()
                target.release.wait(60)
                return  # the sender never gets an answer
            if target.fail_next:
                target.fail_next -= 1
                self.send_response(500)
            else:
                target.messages.append(json.loads(body))
                self.send_response(200)
            self.end_headers()

        def do_GET(self) -> None:
            if self.redirected():
                return
            box[0].messages.append({"method": "GET", "path": self.path})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    box.append(Receiver(url=f"json://{host}:{server.server_port}/hook"))
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield box[0]
    finally:
        box[0].release.set()
        server.shutdown()
        server.server_close()
