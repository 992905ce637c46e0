"""Local stand-ins for Grafana OnCall's public API v1 and PagerDuty's REST API v2.

They answer from lists of objects in the shapes the vendors document and page
them the way each does: OnCall with ``count``/``next``/``previous``/
``results`` and ``page``/``perpage`` (``next`` naming the host OnCall thinks
it has, as a self-hosted engine behind a proxy does), PagerDuty with
``offset``/``limit``/``more``. Each can answer a path once with 429 Too Many
Requests (with ``Retry-After``, and OnCall's ``RateLimit-Reset`` or
PagerDuty's ``ratelimit-reset``). PagerDuty's is HTTPS (its client refuses
anything else), with a self-signed certificate the test trusts through
``SSL_CERT_FILE``.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Api:
    url: str
    token: str
    # OnCall: list name ("users") -> objects; PagerDuty: path ("/users") -> objects.
    lists: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # PagerDuty: single objects by path ("/schedules/P1" -> {"schedule": ...}).
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    page_size: int = 2  # the most a page holds, whatever the client asks
    throttle_once: set[str] = field(default_factory=set)  # paths answered 429 first
    throttle_always: set[str] = field(default_factory=set)
    retry_after: str = "1"
    raw: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # path -> answer as is
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]


def _answer(
    handler: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str]
) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


def _oncall_page(api: Api, name: str, query: dict[str, list[str]]) -> dict[str, Any]:
    items = api.lists.get(name, [])
    size = min(int(query.get("perpage", ["50"])[0]), api.page_size)
    page = int(query.get("page", ["1"])[0])
    chunk = items[(page - 1) * size : page * size]
    more = page * size < len(items)
    # The engine's own idea of its address, not the one the client used.
    base = f"http://oncall-engine:8080/api/v1/{name}/"
    return {
        "count": len(items),
        "next": f"{base}?page={page + 1}&perpage={size}" if more else None,
        "previous": f"{base}?page={page - 1}&perpage={size}" if page > 1 else None,
        "results": chunk,
        "current_page_number": page,
        "page_size": size,
        "total_pages": max(1, -(-len(items) // size)),
    }


def _handler(api_box: list[Api], flavour: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            api = api_box[0]
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            with api.lock:
                api.requests.append(
                    {"path": url.path, "query": query, "headers": dict(self.headers.items())}
                )
                throttled = url.path in api.throttle_once | api.throttle_always
                api.throttle_once.discard(url.path)
            if throttled:
                reset = "ratelimit-reset" if flavour == "pagerduty" else "RateLimit-Reset"
                _answer(
                    self,
                    429,
                    {"detail": "Request was throttled."}
                    if flavour == "oncall"
                    else {"error": {"message": "Rate Limit Exceeded", "code": 2020}},
                    {"Retry-After": api.retry_after, reset: api.retry_after},
                )
                return
            if url.path in api.raw:
                status, data = api.raw[url.path]
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            if flavour == "oncall":
                self._oncall(api, url.path, query)
            else:
                self._pagerduty(api, url.path, query)

        def _oncall(self, api: Api, path: str, query: dict[str, list[str]]) -> None:
            if self.headers.get("Authorization") != api.token:
                _answer(self, 403, {"detail": "Invalid token."}, {})
                return
            name = path.removeprefix("/api/v1/").strip("/")
            if name not in api.lists:
                _answer(self, 404, {"detail": "Not found."}, {})
                return
            _answer(self, 200, _oncall_page(api, name, query), {})

        def _pagerduty(self, api: Api, path: str, query: dict[str, list[str]]) -> None:
            if self.headers.get("Authorization") != f"Token token={api.token}":
                _answer(self, 401, {"error": {"message": "Unauthorized", "code": 2006}}, {})
                return
            if path in api.objects:
                _answer(self, 200, api.objects[path], {})
                return
            if path not in api.lists:
                _answer(self, 404, {"error": {"message": "Not Found", "code": 2100}}, {})
                return
            items = api.lists[path]
            wrapper = path.rsplit("/", 1)[-1]
            if wrapper == "overrides":  # not paginated
                _answer(self, 200, {wrapper: items}, {})
                return
            offset = int(query.get("offset", ["0"])[0])
            limit = min(int(query.get("limit", ["25"])[0]), api.page_size)
            body = {
                wrapper: items[offset : offset + limit],
                "limit": limit,
                "offset": offset,
                "more": offset + limit < len(items),
                "total": None,
            }
            _answer(self, 200, body, {})

    return Handler


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    # Fixed, wide validity: tests travel in time, OpenSSL checks the real clock.
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=365 * 30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextmanager
def api_server(flavour: str, token: str, tls_dir: Path | None = None) -> Iterator[Api]:
    box: list[Api] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(box, flavour))
    scheme = "http"
    if tls_dir is not None:
        cert, key = self_signed(tls_dir)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    box.append(Api(url=f"{scheme}://127.0.0.1:{server.server_port}", token=token))
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield box[0]
    finally:
        server.shutdown()
        server.server_close()
