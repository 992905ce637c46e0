"""A local OpenID Connect provider standing in for Keycloak, Authentik or
Google in tests: discovery, JWKS, authorize, token and userinfo, on 127.0.0.1.

It signs real RS256 ID tokens with an RSA key made per test and publishes the
public half in its JWKS, so triage's real client code (mozilla-django-oidc and
PyJWT) verifies real signatures. The authorize endpoint approves the
configured person at once and sends the browser back with a code; the token
endpoint checks the client's secret, the redirect URI and the PKCE verifier
as a real provider does. Tests break one thing at a time: ``signing_key`` (a
key the JWKS does not publish), ``id_token_claims`` (a wrong nonce, audience,
issuer…), ``userinfo_claims``, ``discovery``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP: Any = _Drop()  # as a claim's value in id_token_claims: leave the claim out


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class OidcProvider:
    issuer: str
    client_id: str = "triage"
    client_secret: str = "test-only-client-secret"
    kid: str = "test-key-1"
    key: rsa.RSAPrivateKey = field(default_factory=new_key)  # published in the JWKS
    signing_key: rsa.RSAPrivateKey | None = None  # signs ID tokens; None: ``key``
    # Who is signed in at the provider (claims in both the ID token and userinfo).
    person: dict[str, Any] = field(
        default_factory=lambda: {
            "sub": "f1c9a2e0-5b7d-4c3e-9a61-0d2b7e4f8a11",
            "preferred_username": "jo",
            "email": "jo@example.org",
            "email_verified": True,
            "given_name": "Jo",
            "family_name": "Okafor",
            "groups": ["responders"],
        }
    )
    id_token_claims: dict[str, Any] = field(default_factory=dict)  # overrides
    userinfo_claims: dict[str, Any] = field(default_factory=dict)  # overrides
    discovery: dict[str, Any] = field(default_factory=dict)  # overrides
    # What reached it, for tests to look at.
    paths: list[str] = field(default_factory=list)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    _codes: dict[str, dict[str, str]] = field(default_factory=dict)
    _access_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def document(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            **self.discovery,
        }

    def jwks(self) -> dict[str, Any]:
        public = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def id_token(self, nonce: str) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            **self.person,
            **self.id_token_claims,
        }
        claims = {name: value for name, value in claims.items() if value is not DROP}
        return jwt.encode(
            claims, self.signing_key or self.key, algorithm="RS256", headers={"kid": self.kid}
        )

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        if query.get("client_id") != self.client_id or query.get("response_type") != "code":
            return 400, {}, {"error": "invalid_request"}
        code = secrets.token_urlsafe(16)
        with self.lock:
            self._codes[code] = {
                "nonce": query.get("nonce", ""),
                "redirect_uri": query["redirect_uri"],
                "challenge": query.get("code_challenge", ""),
            }
        back = urlencode({"code": code, "state": query["state"]})
        return 302, {"Location": f"{query['redirect_uri']}?{back}"}, None

    def token(self, form: dict[str, str], authorization: str) -> tuple[int, Any]:
        self.token_requests.append({**form, "authorization": authorization})
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if authorization.startswith("Basic "):
            client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
        if (client_id, secret) != (self.client_id, self.client_secret):
            return 401, {"error": "invalid_client"}
        with self.lock:
            grant = self._codes.pop(form.get("code", ""), None)  # a code works once
        if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if challenge.rstrip(b"=").decode() != grant["challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE"}
        access_token = secrets.token_urlsafe(24)
        with self.lock:
            self._access_tokens[access_token] = {**self.person, **self.userinfo_claims}
        return 200, {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": self.id_token(grant["nonce"]),
        }

    def userinfo(self, authorization: str) -> tuple[int, Any]:
        with self.lock:
            claims = self._access_tokens.get(authorization.removeprefix("Bearer "))
        if claims is None:
            return 401, {"error": "invalid_token"}
        return 200, claims


@contextmanager
def oidc_provider(**options: Any) -> Iterator[OidcProvider]:
    box: list[OidcProvider] = []

    class Handler(BaseHTTPRequestHandler):
        def answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            idp = box[0]
            parts = urlsplit(self.path)
            idp.paths.append(parts.path)
            query = {name: values[0] for name, values in parse_qs(parts.query).items()}
            if parts.path == "/.well-known/openid-configuration":
                self.answer(200, idp.document())
            elif parts.path == "/jwks":
                self.answer(200, idp.jwks())
            elif parts.path == "/authorize":
                status, headers, body = idp.authorize(query)
                self.answer(status, body, headers)
            elif parts.path == "/userinfo":
                self.answer(*idp.userinfo(self.headers.get("Authorization", "")))
            else:
                self.answer(404, {"error": "not found"})

        def do_POST(self) -> None:
            idp = box[0]
            idp.paths.append(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            form = {name: values[0] for name, values in parse_qs(body).items()}
            if self.path == "/token":
                self.answer(*idp.token(form, self.headers.get("Authorization", "")))
            else:
                self.answer(404, {"error": "not found"})

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.append(OidcProvider(issuer=f"http://127.0.0.1:{server.server_address[1]}", **options))
    # shutdown() waits for the loop's next poll: 0.5 s a test by default.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield box[0]
    finally:
        server.shutdown()
        server.server_close()
