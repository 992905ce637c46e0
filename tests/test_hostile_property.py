"""Hostile input at every endpoint: never a 5xx, and a refusal writes nothing.

Hypothesis generates NUL characters, lone surrogates, deep nesting, huge
numbers, odd unicode and wrong types, and puts them into otherwise valid
requests (so they get past the first checks) or sends them as the whole
body, the query string or a path parameter. Every request goes in-process
through Django's test client to the real PostgreSQL and Redis.

Which routes are fuzzed, and how, is the ENDPOINTS table; it is checked
against tests/test_security.py's ACCESS table, so a new route cannot be
forgotten here. "Nothing written" is PostgreSQL's own count of rows this
transaction inserted, updated or deleted (pg_stat_xact_user_tables), taken
before and after each refused request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import Redis

from accounts.oidc import forget_provider
from accounts.tokens import NewToken, create_api_token
from incidents.models import Incident, Service
from integrations.keys import NewKey
from paging.models import CoverRequest, Rotation, RotationMember, Schedule
from postmortems.models import ActionItem, PostMortem
from tests.examples import examples
from tests.factories import IncidentFactory, contact
from tests.integration_factories import (
    am_alert,
    am_notification,
    grafana_body,
    integration,
    trigger,
)
from tests.oidc_provider import OidcProvider, oidc_provider
from tests.postmortem_factories import action_item, postmortem
from tests.test_security import ACCESS
from triage import jsonbody
from triage.jsonbody import MAX_DEPTH

pytestmark = pytest.mark.django_db

# Enough for the suite (fewer under `make check`: tests/examples.py);
# HOSTILE_EXAMPLES=500 for a deeper hunt before a release.
EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "0")) or examples(20)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- what is thrown ----------------------------------------------------------

SPECIALS = [
    "\x00",
    "a\x00b",
    "\ud800",
    "\udfff",
    "x\udc00y",
    "\ufeff",  # byte order mark
    "\u202e",  # right-to-left override
    "\uffff",  # a noncharacter
    "e\u0301",  # combining accent
    "\U0001d41b\U0001d428\U0001d41b",  # mathematical bold "bob"
    "\u0130",  # changes length when lower-cased
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "%00",
    "../../etc/passwd",
    "\\u0000",
    "a" * 5000,
    " ",
    "",
]

odd_text = st.one_of(
    st.sampled_from(SPECIALS),
    st.text(max_size=20),
    st.builds(
        lambda head, special, tail: head + special + tail,
        st.text(max_size=4),
        st.sampled_from(SPECIALS),
        st.text(max_size=4),
    ),
)
huge_numbers = st.sampled_from(
    [2**31, 2**63, -(2**63) - 1, 10**400, 1e308, -1e308, 5e-324, 0.1, -0, 10**4000]
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), huge_numbers, st.floats(allow_nan=False), odd_text
)


def nested(depth: int, leaf: Any = "x") -> Any:
    value = leaf
    for index in range(depth):
        value = {"a": value} if index % 2 else [value]
    return value


values = st.one_of(
    st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(odd_text, children, max_size=3)
        ),
        max_leaves=8,
    ),
    st.integers(MAX_DEPTH - 3, MAX_DEPTH * 30).map(nested),
)

# Whole bodies no JSON encoder would write.
RAW_BODIES = [
    b"[" * 100_000 + b"]" * 100_000,
    b"{" * 5000,
    b'{"a": NaN}',
    b'{"a": Infinity}',
    b'{"a": -1e999}',
    b'{"a": 1' + b"0" * 5000 + b"}",
    b'{"a": "\xed\xa0\x80"}',  # a surrogate encoded as UTF-8: not UTF-8
    b"\xff\xfe",
    b"",
    b"null",
    b"[]",
    b'"text"',
    b'{"a": "\\ud800"}',
    b'{"\\u0000": 1}',
    b'{"a": "\x00"}',
]
raw_bodies = st.sampled_from(RAW_BODIES)


def encoded(value: Any) -> bytes:
    """JSON as a hostile sender writes it: lone surrogates as \\ud800 escapes."""
    return json.dumps(value).encode("ascii")


def form_encoded(fields: dict[str, str]) -> bytes:
    """application/x-www-form-urlencoded, surrogates percent-encoded as the
    UTF-8 bytes a broken client would send."""
    return "&".join(
        f"{quote(k.encode('utf-8', 'surrogatepass'))}={quote(v.encode('utf-8', 'surrogatepass'))}"
        for k, v in fields.items()
    ).encode("ascii")


def put(document: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A deep copy of the document with the value at the path."""
    copy: dict[str, Any] = json.loads(json.dumps(document))
    target: Any = copy
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return copy


# --- the world the requests land in -----------------------------------------


@dataclass
class World:
    client: Client  # a logged-in staff member (every login route reachable)
    anonymous: Client
    token: NewToken
    events: NewKey
    alertmanager: NewKey
    grafana: NewKey
    heartbeat: NewKey
    incident: Incident
    post_mortem: PostMortem
    item: ActionItem
    method_pk: int
    cover: CoverRequest

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token.raw}"}


@pytest.fixture
def idp(settings: Any) -> Iterator[OidcProvider]:
    with oidc_provider() as provider:
        settings.OIDC_ISSUER = provider.issuer
        settings.OIDC_CLIENT_ID = provider.client_id
        settings.OIDC_CLIENT_SECRET = provider.client_secret
        forget_provider()
        yield provider
    forget_provider()


@pytest.fixture
def world(web: Service, redis: Redis, settings: Any, idp: OidcProvider) -> World:
    # Each login attempt hashes a password: a fast hasher keeps the fuzzing quick.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    staff = User.objects.create_user("pat", password="pw", is_staff=True)
    client = Client()
    client.force_login(staff)
    many = {"rate_limit_per_minute": 1_000_000}
    pm = postmortem(actor=staff)
    return World(
        client=client,
        anonymous=Client(),
        token=create_api_token(user=staff, name="fuzz", scope="write"),
        events=integration(web, "events_v2", **many),
        alertmanager=integration(web, "alertmanager", **many),
        grafana=integration(web, "grafana", **many),
        heartbeat=integration(web, "heartbeat", **many),
        incident=IncidentFactory(service=web),
        post_mortem=pm,
        item=action_item(pm),
        method_pk=contact(staff).pk,
        cover=_cover_request(staff),
    )


def _cover_request(staff: User) -> CoverRequest:
    """The "primary" schedule, pat and sam on its rotation, sam asking pat."""
    now = timezone.now()
    schedule = Schedule.objects.create(name="Primary", slug="primary")
    rotation = Rotation.objects.create(schedule=schedule, name="r", start=now, shift_unit="days")
    sam = User.objects.create_user("sam")
    for position, person in enumerate((staff, sam)):
        RotationMember.objects.create(rotation=rotation, user=person, position=position)
    return CoverRequest.objects.create(
        schedule=schedule,
        requester=sam,
        asked=staff,
        start=now + timedelta(days=1),
        end=now + timedelta(days=2),
        created_at=now,
    )


# --- the endpoints ----------------------------------------------------------

# A JSON endpoint: the route, how to reach it, a valid body, and the places in
# the body that hostile values replace.
Request = tuple[str, dict[str, str]]  # path, headers


@dataclass(frozen=True)
class JsonEndpoint:
    route: Callable[[World], Request]
    body: Callable[[World], dict[str, Any]]
    fields: list[tuple[str | int, ...]]
    anonymous: bool = False


def _mcp_call(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }


MCP_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-06-18",
}

EVENT_FIELDS: list[tuple[str | int, ...]] = [
    ("routing_key",),
    ("event_action",),
    ("dedup_key",),
    ("payload",),
    ("payload", "summary"),
    ("payload", "source"),
    ("payload", "severity"),
    ("payload", "timestamp"),
    ("payload", "component"),
    ("payload", "custom_details"),
    ("links",),
    ("images",),
    ("client_url",),
]
AM_FIELDS: list[tuple[str | int, ...]] = [
    ("version",),
    ("status",),
    ("receiver",),
    ("groupKey",),
    ("truncatedAlerts",),
    ("commonLabels",),
    ("alerts",),
    ("alerts", 0, "status"),
    ("alerts", 0, "labels"),
    ("alerts", 0, "labels", "instance"),
    ("alerts", 0, "annotations", "summary"),
    ("alerts", 0, "startsAt"),
    ("alerts", 0, "generatorURL"),
    ("alerts", 0, "fingerprint"),
]


GRAFANA_FIELDS: list[tuple[str | int, ...]] = [
    *AM_FIELDS,
    ("orgId",),
    ("title",),
    ("state",),
    ("message",),
    ("alerts", 0, "values"),
    ("alerts", 0, "values", "A"),
    ("alerts", 0, "valueString"),
    ("alerts", 0, "dashboardURL"),
    ("alerts", 0, "panelURL"),
    ("alerts", 0, "silenceURL"),
    ("alerts", 0, "imageURL"),
]
CHANGE_FIELDS: list[tuple[str | int, ...]] = [
    ("routing_key",),
    ("payload",),
    ("payload", "summary"),
    ("payload", "source"),
    ("payload", "timestamp"),
    ("payload", "custom_details"),
    ("links",),
    ("links", 0, "href"),
]


def _change(w: World) -> dict[str, Any]:
    return {
        "routing_key": w.events.raw,
        "payload": {"summary": "Deployed", "source": "ci", "custom_details": {"build": 1}},
        "links": [{"href": "https://ci.example.org/1", "text": "Build 1"}],
    }


def _notification(w: World) -> dict[str, Any]:
    return am_notification(am_alert("fp1", instance="db1", summary="Disk full"))


def _incident_body(w: World) -> dict[str, Any]:
    return {"title": "Disk full", "service": "web", "severity": "critical", "details": "d"}


def _item_body(w: World) -> dict[str, Any]:
    return {"priority": "P1", "action": "Add alert", "type": "Alert", "details": "d"}


JSON_ENDPOINTS: dict[str, JsonEndpoint] = {
    "v2/enqueue": JsonEndpoint(
        lambda w: ("/v2/enqueue", {}), lambda w: trigger(w.events.raw), EVENT_FIELDS, True
    ),
    "integrations/v2/enqueue": JsonEndpoint(
        lambda w: ("/integrations/v2/enqueue", {}),
        lambda w: trigger(w.events.raw),
        EVENT_FIELDS,
        True,
    ),
    "integrations/alertmanager/<str:key>": JsonEndpoint(
        lambda w: (f"/integrations/alertmanager/{w.alertmanager.raw}", {}),
        _notification,
        AM_FIELDS,
        True,
    ),
    "integrations/grafana/<str:key>": JsonEndpoint(
        lambda w: (f"/integrations/grafana/{w.grafana.raw}", {}),
        lambda w: grafana_body("01-firing-one-alert"),
        GRAFANA_FIELDS,
        True,
    ),
    "integrations/grafana": JsonEndpoint(
        lambda w: ("/integrations/grafana", {"Authorization": f"Bearer {w.grafana.raw}"}),
        lambda w: grafana_body("01-firing-one-alert"),
        GRAFANA_FIELDS,
        True,
    ),
    "v2/change/enqueue": JsonEndpoint(
        lambda w: ("/v2/change/enqueue", {}), _change, CHANGE_FIELDS, True
    ),
    "integrations/v2/change/enqueue": JsonEndpoint(
        lambda w: ("/integrations/v2/change/enqueue", {}), _change, CHANGE_FIELDS, True
    ),
    "integrations/alertmanager": JsonEndpoint(
        lambda w: ("/integrations/alertmanager", {"Authorization": f"Bearer {w.alertmanager.raw}"}),
        _notification,
        AM_FIELDS,
        True,
    ),
    # Parsed before its token is checked (the token is inside the body).
    "chat/mattermost/actions": JsonEndpoint(
        lambda w: ("/chat/mattermost/actions", {}),
        lambda w: {"user_id": "u1", "context": {"action": "ack", "incident": 1, "token": "x"}},
        [("user_id",), ("context", "action"), ("context", "token")],
        True,
    ),
    "integrations/heartbeat/<str:key>": JsonEndpoint(
        lambda w: (f"/integrations/heartbeat/{w.heartbeat.raw}", {}), lambda w: {}, [("x",)], True
    ),
    "incidents": JsonEndpoint(
        lambda w: ("/incidents", w.bearer()),
        _incident_body,
        [("title",), ("service",), ("severity",), ("details",), ("dedup_key",)],
    ),
    "^incidents/(?P<pk>[0-9]+)/(?P<action>acknowledge|resolve|reopen|escalate|notes)$": (
        JsonEndpoint(
            lambda w: (f"/incidents/{w.incident.pk}/notes", w.bearer()),
            lambda w: {"text": "Rolled back"},
            [("text",)],
        )
    ),
    "incidents/<int:pk>/postmortem": JsonEndpoint(
        lambda w: (f"/incidents/{w.incident.pk}/postmortem", w.bearer()),
        lambda w: {},
        [("x",)],
    ),
    "postmortems/<int:pk>/actions": JsonEndpoint(
        lambda w: (f"/postmortems/{w.post_mortem.pk}/actions", w.bearer()),
        _item_body,
        [("priority",), ("action",), ("type",), ("details",), ("owner",)],
    ),
    "postmortems/<int:pk>/actions/<int:item_id>/done": JsonEndpoint(
        lambda w: (f"/postmortems/{w.post_mortem.pk}/actions/{w.item.pk}/done", w.bearer()),
        lambda w: {"commit": "abc123", "implemented_by": "pat"},
        [("commit",), ("link",), ("implemented_by",)],
    ),
    "v1/incidents": JsonEndpoint(
        lambda w: ("/v1/incidents", w.bearer()),
        _incident_body,
        [("title",), ("service",), ("severity",), ("details",), ("dedup_key",)],
    ),
    "v1/incidents/<incident_id>/notes": JsonEndpoint(
        lambda w: (f"/v1/incidents/{w.incident.pk}/notes", w.bearer()),
        lambda w: {"text": "Rolled back"},
        [("text",)],
    ),
    "v1/incidents/<incident_id>/acknowledge": JsonEndpoint(
        lambda w: (f"/v1/incidents/{w.incident.pk}/acknowledge", w.bearer()),
        lambda w: {},
        [("x",)],
    ),
    "mcp": JsonEndpoint(
        lambda w: ("/mcp", {**w.bearer(), **MCP_HEADERS}),
        lambda w: _mcp_call("add_note", {"incident_id": w.incident.pk, "text": "Rolled back"}),
        [
            ("params", "arguments", "text"),
            ("params", "arguments", "incident_id"),
            ("params", "name"),
            ("method",),
            ("id",),
        ],
    ),
}


@dataclass(frozen=True)
class FormEndpoint:
    path: Callable[[World], str]
    fields: list[str]
    anonymous: bool = False


FORM_ENDPOINTS: dict[str, FormEndpoint] = {
    "login": FormEndpoint(lambda w: "/login", ["username", "password"], True),
    "admin/login/": FormEndpoint(lambda w: "/admin/login/", ["username", "password"], True),
    "report": FormEndpoint(
        lambda w: "/report", ["service", "what", "started", "seeing", "expected", "contact"], True
    ),
    "incidents": FormEndpoint(
        lambda w: "/incidents", ["title", "service", "severity", "details", "dedup_key"]
    ),
    "^incidents/(?P<pk>[0-9]+)/(?P<action>acknowledge|resolve|reopen|escalate|notes)$": (
        FormEndpoint(lambda w: f"/incidents/{w.incident.pk}/notes", ["text"])
    ),
    "postmortems/<int:pk>/status": FormEndpoint(
        lambda w: f"/postmortems/{w.post_mortem.pk}/status", ["status"]
    ),
    "postmortems/<int:pk>/sections/<slug:name>": FormEndpoint(
        lambda w: f"/postmortems/{w.post_mortem.pk}/sections/summary", ["summary-text"]
    ),
    "postmortems/<int:pk>/actions": FormEndpoint(
        lambda w: f"/postmortems/{w.post_mortem.pk}/actions",
        ["priority", "action", "type", "details", "owner"],
    ),
    "postmortems/<int:pk>/actions/<int:item_id>": FormEndpoint(
        lambda w: f"/postmortems/{w.post_mortem.pk}/actions/{w.item.pk}",
        ["priority", "action", "type", "details", "owner"],
    ),
    "postmortems/<int:pk>/actions/<int:item_id>/status": FormEndpoint(
        lambda w: f"/postmortems/{w.post_mortem.pk}/actions/{w.item.pk}/status", ["status"]
    ),
    "postmortems/<int:pk>/actions/<int:item_id>/done": FormEndpoint(
        lambda w: f"/postmortems/{w.post_mortem.pk}/actions/{w.item.pk}/done",
        ["commit", "link", "implemented_by"],
    ),
    "integrations": FormEndpoint(
        lambda w: "/integrations", ["service", "kind", "name", "rate_limit_per_minute"]
    ),
    "account/notifications": FormEndpoint(
        lambda w: "/account/notifications", ["method-name", "method-url", "rule-delay_minutes"]
    ),
    "account/tokens": FormEndpoint(lambda w: "/account/tokens", ["name", "scope"]),
    "oncall/<slug:slug>/take": FormEndpoint(lambda w: "/oncall/primary/take", ["start", "end"]),
    "oncall/<slug:slug>/cover": FormEndpoint(
        lambda w: "/oncall/primary/cover", ["start", "end", "asked", "note"]
    ),
    "account/settings": FormEndpoint(lambda w: "/account/settings", ["time_zone"]),
    "account/settings/browser-time-zone": FormEndpoint(
        lambda w: "/account/settings/browser-time-zone", ["time_zone"]
    ),
    "incidents/<int:pk>/public-title": FormEndpoint(
        lambda w: f"/incidents/{w.incident.pk}/public-title", ["public_title"]
    ),
    # Chat vendors' endpoints: unsigned, so refused (401) before anything is
    # read; tests/test_chat.py fuzzes nothing signed, this holds the 401s.
    "chat/slack/interactions": FormEndpoint(
        lambda w: "/chat/slack/interactions", ["payload"], True
    ),
    "chat/slack/commands": FormEndpoint(
        lambda w: "/chat/slack/commands", ["command", "text", "user_id"], True
    ),
    "chat/mattermost/commands": FormEndpoint(
        lambda w: "/chat/mattermost/commands", ["token", "text", "user_id"], True
    ),
}

# Routes that take no JSON or form input of their own: their path and query
# parameters are fuzzed (PATH_PARAMETERS, QUERIES), and ACCESS's method is sent.
NO_BODY = {
    "healthz",
    "incidents/<int:pk>/storm-alerts/<int:item_id>/split",
    "readyz",
    "metrics",
    "admin/",
    "logout",
    "status",
    "postmortems/",
    "postmortems/<int:pk>",
    "postmortems/<int:pk>.md",
    "postmortems/<int:pk>/todos",
    "postmortems/<int:pk>/followups",
    "postmortems/<int:pk>/preview",
    "a/<str:token>",
    "chat/link/<str:token>",
    "integrations/<int:pk>/rotate",
    "integrations/<int:pk>/revoke",
    "v1/openapi.json",
    "v1/docs",
    "v1/incidents/open",
    "v1/incidents/<incident_id>",
    "v1/incidents/<incident_id>/resolve",
    "v1/incidents/<incident_id>/escalate",
    "v1/services",
    "v1/oncall",
    "v1/insights",
    "v1/",
    "oncall",
    "oncall/<slug:slug>.ics",
    "oncall/people/<str:username>.ics",
    "account/notifications/<int:pk>/test",
    "account/notifications/<int:pk>/delete",
    "account/notifications/<int:pk>/row",
    "oncall/unreachable",
    "oncall/mine",
    "oncall/cover/<int:pk>/accept",
    "oncall/cover/<int:pk>/decline",
    "oncall/cover/<int:pk>/cancel",
    "insights",
    "",
    "incidents/new",
    "incidents/<int:pk>",
    "account/tokens/<int:pk>/revoke",
    "oidc/authenticate/",
    "oidc/callback/",
}

# Paths with a text parameter, the hostile text put in its place.
PATH_PARAMETERS: list[Callable[[str], str]] = [
    lambda text: f"/oncall/people/{text}.ics",
    lambda text: f"/oncall/{text}.ics",
    lambda text: f"/oncall/{text}/take",
    lambda text: f"/integrations/alertmanager/{text}",
    lambda text: f"/integrations/grafana/{text}",
    lambda text: f"/integrations/heartbeat/{text}",
    lambda text: f"/postmortems/1/sections/{text}",
    lambda text: f"/a/{text}",
    lambda text: f"/chat/link/{text}",
]

# Pages with a search or filter in the query string.
QUERIES: list[tuple[str, list[str], bool]] = [  # path, parameters, needs the token
    ("/", ["q", "service", "severity", "status", "from", "to", "page"], False),
    (
        "/v1/incidents",
        ["q", "service", "status", "severity", "from", "to", "cursor", "limit"],
        True,
    ),
    ("/v1/incidents/open", ["service", "limit"], True),
    ("/v1/oncall", ["schedule", "policy", "at"], True),
    ("/oncall", ["at"], False),
    ("/insights", ["days", "service"], False),
    ("/v1/insights", ["days", "service"], True),
    ("/postmortems/", ["page"], False),
    ("/postmortems/1", ["edit"], False),
    ("/report", ["service"], False),
    ("/login", ["next"], False),
    # The provider (tests/oidc_provider.py) is configured: next goes into the
    # session, code and state meet the state check.
    ("/oidc/authenticate/", ["next"], False),
    ("/oidc/callback/", ["code", "state", "error"], False),
    ("/oncall/people/pat.ics", ["token"], False),
]


def test_every_route_is_fuzzed_or_named_as_taking_no_body() -> None:
    covered = set(JSON_ENDPOINTS) | set(FORM_ENDPOINTS) | NO_BODY
    assert sorted(set(ACCESS) - covered) == [], "add the new routes to a table here"
    assert sorted(covered - set(ACCESS)) == [], "remove routes that are gone"


# --- the checks -------------------------------------------------------------


def rows_written() -> int:
    """Rows this transaction has inserted, updated or deleted so far, besides
    the bookkeeping every request may do (sessions, a token's or key's
    last-used time)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)"
            " FROM pg_stat_xact_user_tables"
            " WHERE relname NOT IN ('django_session', 'incidents_apitoken',"
            " 'integrations_integration', 'auth_user')"
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def check(send: Callable[[], Any], redis: Redis) -> None:
    redis.flushdb()  # rate limits must not hide what a request would do
    before = rows_written()
    response = send()
    detail = response.content[:300]
    assert response.status_code < 500, detail
    if response.status_code >= 400:
        assert rows_written() == before, (response.status_code, detail)


# --- the fuzzing ------------------------------------------------------------


@pytest.mark.parametrize("route", sorted(JSON_ENDPOINTS))
@FUZZ
@given(data=st.data())
def test_json_endpoints_refuse_hostile_values_without_a_5xx(
    world: World, redis: Redis, route: str, data: st.DataObject
) -> None:
    endpoint = JSON_ENDPOINTS[route]
    path, headers = endpoint.route(world)
    body = data.draw(
        st.one_of(
            raw_bodies,
            values.map(encoded),
            st.tuples(st.sampled_from(endpoint.fields), values).map(
                lambda where: encoded(put(endpoint.body(world), where[0], where[1]))
            ),
        )
    )
    client = world.anonymous if endpoint.anonymous else world.client
    check(
        lambda: client.post(path, data=body, content_type="application/json", headers=headers),
        redis,
    )


@pytest.mark.parametrize("route", sorted(FORM_ENDPOINTS))
@FUZZ
@given(data=st.data())
def test_form_endpoints_refuse_hostile_values_without_a_5xx(
    world: World, redis: Redis, route: str, data: st.DataObject
) -> None:
    endpoint = FORM_ENDPOINTS[route]
    fields = data.draw(st.fixed_dictionaries(dict.fromkeys(endpoint.fields, odd_text)))
    client = world.anonymous if endpoint.anonymous else world.client
    check(
        lambda: client.post(
            endpoint.path(world),
            data=form_encoded(fields),
            content_type="application/x-www-form-urlencoded",
            headers={"HX-Request": "true"},
        ),
        redis,
    )


@FUZZ
@given(text=odd_text, make=st.sampled_from(PATH_PARAMETERS))
def test_hostile_path_parameters_are_not_a_5xx(
    world: World, redis: Redis, text: str, make: Callable[[str], str]
) -> None:
    path = make(quote(text.encode("utf-8", "surrogatepass"), safe=""))
    check(lambda: world.client.get(path), redis)


@FUZZ
@given(page=st.sampled_from(QUERIES), data=st.data())
def test_hostile_query_strings_are_not_a_5xx(
    world: World, redis: Redis, page: tuple[str, list[str], bool], data: st.DataObject
) -> None:
    path, names, token = page
    query = form_encoded(data.draw(st.fixed_dictionaries(dict.fromkeys(names, odd_text))))
    headers = world.bearer() if token else {}
    check(lambda: world.client.get(f"{path}?{query.decode()}", headers=headers), redis)


@pytest.mark.parametrize("route", sorted(NO_BODY))
def test_routes_without_a_body_shrug_off_one_anyway(world: World, redis: Redis, route: str) -> None:
    method, _ = ACCESS[route]
    path = _concrete(route, world)

    def send(body: bytes) -> Any:
        if method == "POST":
            return world.client.post(path, data=body, content_type="application/json")
        return world.client.get(path + "?%00=%ED%A0%80")

    for body in RAW_BODIES[:8]:
        check(lambda: send(body), redis)  # noqa: B023 - called at once


def _concrete(route: str, w: World) -> str:
    values = {
        "<int:pk>": str(w.post_mortem.pk if "postmortems" in route else w.incident.pk),
        "<incident_id>": str(w.incident.pk),
        "<slug:slug>": "primary",
        "<str:username>": "pat",
        "<str:token>": "not-a-link",
    }
    if route.startswith(("integrations/<int:pk>",)):
        values["<int:pk>"] = str(w.events.integration.pk)
    if route.startswith("account/notifications/"):
        values["<int:pk>"] = str(w.method_pk)
    if route.startswith("oncall/cover/"):
        values["<int:pk>"] = str(w.cover.pk)
    if route.startswith("account/tokens/"):
        values["<int:pk>"] = str(w.token.token.pk)
    path = route
    for name, value in values.items():
        path = path.replace(name, value)
    return "/" + path


# --- the reader itself --------------------------------------------------------


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


deep_values = st.recursive(
    st.one_of(st.none(), st.integers(), st.text(alphabet='[]{}"\\,:ab', max_size=6)),
    lambda children: (
        st.lists(children, max_size=2)
        | st.dictionaries(st.text(alphabet='[]{}"\\ab', max_size=4), children, max_size=2)
    ),
    max_leaves=60,
)


@settings(max_examples=examples(300), deadline=None, database=None)
@given(value=st.one_of(deep_values, st.integers(1, 80).map(nested)))
def test_the_depth_measured_on_the_text_is_the_depth_of_the_value(value: Any) -> None:
    # Brackets, quotes and backslashes inside strings and keys must not fool it.
    text = json.dumps(value)
    if depth_of(value) > MAX_DEPTH:
        with pytest.raises(jsonbody.InvalidJson, match=f"nested deeper than {MAX_DEPTH} levels"):
            jsonbody.loads(text)
    else:
        assert jsonbody.loads(text) == value
