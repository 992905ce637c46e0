"""Machine endpoints run without the browser-only middleware (triage.lean);
browser pages keep all of it, and both keep metrics and the request log."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection, connections
from django.middleware.csrf import CsrfViewMiddleware
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from prometheus_client import REGISTRY
from redis import Redis

from incidents.models import Service
from integrations.keys import NewKey
from tests.integration_factories import integration, trigger
from tests.test_security import concrete
from triage.lean import browser_only, is_machine_path

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(web: Service, redis: Redis) -> NewKey:
    return integration(web, "events_v2")


def _answered(view: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "django_http_responses_total_by_status_view_method_total",
        {"status": status, "view": view, "method": "POST"},
    )
    return value or 0.0


BROWSER_HEADERS = ("Content-Security-Policy",)


def test_an_event_gets_no_browser_headers_and_no_cookie_but_is_logged_and_counted(
    client: Client, events: NewKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="triage.access")
    before = _answered("integrations-enqueue-pd", "202")
    # A sender that echoes cookies back gets no session started either.
    client.cookies["sessionid"] = "whatever"
    response = client.post(
        "/v2/enqueue", data=json.dumps(trigger(events.raw)), content_type="application/json"
    )
    assert response.status_code == 202, response.content
    assert not any(header in response for header in BROWSER_HEADERS)
    assert not response.cookies
    assert not hasattr(response.wsgi_request, "session")
    assert response["X-Request-ID"]  # the request log ran
    assert response["X-Content-Type-Options"] == "nosniff"  # the security middleware ran
    assert [r.getMessage() for r in caplog.records if r.name == "triage.access"] == [
        "POST /v2/enqueue 202"
    ]
    assert _answered("integrations-enqueue-pd", "202") == before + 1


@pytest.mark.parametrize(
    "path",
    [
        "/integrations/heartbeat/nobody",
        "/integrations/alertmanager/nobody",
        "/integrations/v2/enqueue",
    ],
)
def test_every_machine_endpoint_skips_the_browser_middleware(client: Client, path: str) -> None:
    response = client.post(path, data="{}", content_type="application/json")
    assert response.status_code in (400, 401), response.content
    assert not any(header in response for header in BROWSER_HEADERS)


def test_browser_pages_keep_csrf_csp_and_sessions(alice: User) -> None:
    anonymous = Client(enforce_csrf_checks=True)
    login = anonymous.get("/login")
    assert "script-src 'self'" in login["Content-Security-Policy"]
    assert login["X-Frame-Options"] == "DENY"
    assert "csrftoken" in login.cookies
    refused = anonymous.post("/login", {"username": "alice", "password": "x"})
    assert refused.status_code == 403

    signed_in = Client()
    signed_in.force_login(alice)
    # /integrations is a browser page under the machine prefixes' parent.
    page = signed_in.get("/integrations")
    assert page.status_code == 200
    assert "Content-Security-Policy" in page
    assert page.wsgi_request.user == alice


def _machine_views() -> list[tuple[str, bool]]:
    """(a path of every route, whether its view is marked ``machine``)."""
    found: list[tuple[str, bool]] = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            text = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                if text != "admin/":
                    walk(pattern.url_patterns, text)
            elif isinstance(pattern, URLPattern):
                marked = getattr(pattern.callback, "machine_endpoint", False)
                found.append((concrete(text), marked))

    walk(get_resolver().url_patterns, "")
    return found


def test_machine_paths_are_exactly_the_routes_of_machine_views() -> None:
    routes = _machine_views()
    assert sum(marked for _, marked in routes) == 9
    wrong = [(path, marked) for path, marked in routes if is_machine_path(path) != marked]
    assert wrong == []


def _wsgi(app: WSGIHandler, method: str, path: str, body: bytes = b"") -> str:
    """The status line of a request sent the way gunicorn sends it (the test
    client leaves out Django's per-request connection handling)."""
    answered: list[str] = []
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
    }
    b"".join(app(environ, lambda status, headers, exc=None: answered.append(status)))
    return answered[0]


@pytest.mark.django_db(transaction=True)
def test_machine_requests_skip_the_connection_health_check_browsers_keep_it(
    events: NewKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings: list[str] = []
    wrapper = type(connections["default"])
    usable = wrapper.is_usable

    def is_usable(self: Any) -> bool:
        pings.append(self.alias)
        return bool(usable(self))

    monkeypatch.setattr(wrapper, "is_usable", is_usable)
    app = WSGIHandler()
    connection.ensure_connection()
    body = json.dumps(trigger(events.raw, dedup_key="disk")).encode()
    for _ in range(2):
        assert _wsgi(app, "POST", "/v2/enqueue", body).startswith("202")
    assert pings == []
    assert _wsgi(app, "GET", "/status").startswith("200")
    assert pings == ["default"]


def test_middleware_with_view_hooks_cannot_be_skipped_silently() -> None:
    # Django calls process_view on every path: skipping only __call__ would
    # run half of such a middleware on machine paths.
    with pytest.raises(TypeError, match="process_view"):
        browser_only(CsrfViewMiddleware)
