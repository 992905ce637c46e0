"""The dashboard's read model: the list is cached under the version of "what
is open", polls answer 304 while nothing changed, and nothing a responder
sees goes stale (changes, deliveries, maintenance windows, the clock)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from redis import Redis
from time_machine import TimeMachineFixture

from incidents import selectors, services
from incidents.models import Incident, Service, Severity
from paging import notify
from paging.models import MaintenanceWindow, Page, PageStatus
from tests.factories import IncidentFactory, UserFactory, contact, policy_with_levels

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
REFRESH = {"HX-Request": "true", "HX-Target": "incident-list"}


def poll(client: Client, etag: str = "", path: str = "/") -> Any:
    headers = {**REFRESH, "If-None-Match": etag} if etag else REFRESH
    return client.get(path, headers=headers)


def row_html(client: Client, incident: Incident) -> str:
    html = client.get("/").content.decode()
    return html.split(f'data-incident="{incident.pk}"', 1)[1].split("</tr>", 1)[0]


def test_an_unchanged_poll_is_a_304_and_a_change_shows_at_the_next(
    alice_client: Client, redis: Redis
) -> None:
    incident = IncidentFactory(title="checkout 502")
    first = poll(alice_client)
    assert first.status_code == 200
    assert first["Cache-Control"] == "private, no-cache"
    assert {"HX-Request", "HX-Target"} <= {h.strip() for h in first["Vary"].split(",")}
    etag = first["ETag"]

    unchanged = poll(alice_client, etag)
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged["ETag"] == etag

    services.acknowledge_incident(incident, actor=None)
    changed = poll(alice_client, etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    assert '<span class="status acknowledged">Acknowledged</span>' in changed.content.decode()


def test_the_etag_belongs_to_the_person_and_the_filters(alice_client: Client, redis: Redis) -> None:
    IncidentFactory(title="checkout 502", severity="critical")
    etag = poll(alice_client)["ETag"]
    # Another filter, another answer: the ETag of "/" is no good for it.
    assert poll(alice_client, etag, "/?severity=info").status_code == 200
    bob = Client()
    bob.force_login(UserFactory(username="bob"))
    assert poll(bob, etag).status_code == 200
    # The full page is never answered with a 304: it carries forms.
    full = alice_client.get("/", headers={"If-None-Match": etag})
    assert full.status_code == 200
    assert "ETag" not in full


def test_an_unchanged_poll_asks_postgresql_nothing_but_who_is_asking(
    alice_client: Client, redis: Redis
) -> None:
    for n in range(30):
        IncidentFactory(title=f"incident {n}", severity=Severity.values[n % 4])
    etag = poll(alice_client)["ETag"]
    with CaptureQueriesContext(connection) as queries:
        assert poll(alice_client, etag).status_code == 304
        assert poll(alice_client).status_code == 200  # a fresh tab: rendered from the cache
    # The session and the user (Django's auth), nothing of what is open.
    for query in queries:
        assert "django_session" in query["sql"] or "auth_user" in query["sql"], query["sql"]


@pytest.mark.django_db(transaction=True)
def test_a_delivery_shows_without_a_timeline_event(
    web: Service, redis: Redis, alice_client: Client, outbound_loopback: Any
) -> None:
    """A second contact method delivering for the same person and step adds
    no timeline entry; the row still changes from queued to sent."""
    ana = UserFactory(username="ana")
    contact(ana, url="json://127.0.0.1:9/hook")
    web.escalation_policy = policy_with_levels((5, [ana]))
    web.save()
    incident = IncidentFactory(service=web)
    assert "ana … queued" in row_html(alice_client, incident)
    (page,) = Page.objects.filter(incident=incident)
    events = incident.timeline.count()
    # Refused: the page fails (it is retried later) with no timeline entry.
    notify.deliver(page.pk)
    assert Page.objects.get(pk=page.pk).status == PageStatus.FAILED
    assert incident.timeline.count() == events
    assert "ana ⟳ retrying" in row_html(alice_client, incident)


@pytest.mark.django_db(transaction=True)
def test_a_maintenance_window_starting_later_holds_the_row_when_it_starts(
    web: Service, redis: Redis, alice_client: Client, time_machine: TimeMachineFixture
) -> None:
    """Nothing is written when a window starts: the cached list ends there."""
    time_machine.move_to(T0, tick=False)
    ana, bob = UserFactory(username="ana"), UserFactory(username="bob")
    contact(ana)  # reachable: level 2 waits for its deadline
    web.escalation_policy = policy_with_levels((30, [ana]), (30, [bob]))
    web.save()
    MaintenanceWindow.objects.create(
        service=web, start=T0 + timedelta(minutes=10), end=T0 + timedelta(hours=1)
    )
    incident = IncidentFactory(service=web)
    assert "next: level 2 — bob, " in row_html(alice_client, incident)
    etag = poll(alice_client)["ETag"]
    assert poll(alice_client, etag).status_code == 304

    time_machine.shift(timedelta(minutes=10))
    assert poll(alice_client, etag).status_code == 200
    assert "held by a maintenance window until 04:00 UTC" in row_html(alice_client, incident)
    time_machine.shift(timedelta(hours=1))
    assert "next: level 2 — bob, " in row_html(alice_client, incident)


@pytest.mark.django_db(transaction=True)
def test_countdowns_are_rendered_at_each_request_not_cached(
    web: Service, redis: Redis, alice_client: Client, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(T0, tick=False)
    ana = UserFactory()
    contact(ana)  # reachable: level 2 waits for its deadline
    web.escalation_policy = policy_with_levels((30, [ana]), (30, [UserFactory()]))
    web.save()
    incident = IncidentFactory(service=web)
    assert "in 30 min</time>" in row_html(alice_client, incident)
    time_machine.shift(timedelta(minutes=12))
    assert "in 18 min</time>" in row_html(alice_client, incident)


def test_renaming_a_service_or_a_person_shows_at_once(
    web: Service, alice: User, redis: Redis, alice_client: Client
) -> None:
    incident = IncidentFactory(service=web)
    services.acknowledge_incident(incident, actor=alice)
    assert f"<td>{web.name}</td>" in row_html(alice_client, incident)
    web.name = "Storefront"
    web.save()
    alice.username = "alice2"
    alice.save()
    row = row_html(alice_client, incident)
    assert "<td>Storefront</td>" in row
    assert "<small>by alice2</small>" in row


def test_without_redis_the_dashboard_reads_postgresql(
    alice_client: Client, request: pytest.FixtureRequest
) -> None:
    IncidentFactory(title="still listed")
    request.getfixturevalue("redis_unreachable")  # Redis down from here on
    response = poll(alice_client)
    assert response.status_code == 200
    assert "still listed" in response.content.decode()
    assert "ETag" not in response


def _nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's nodes, without subplans: a row's latest "paged" event is a
    subquery of its own (a few rows, sorted)."""
    found = [node]
    for child in node.get("Plans", []):
        if child.get("Parent Relationship") != "SubPlan":
            found += _nodes(child)
    return found


@pytest.mark.parametrize("severity", ["", "critical"])
def test_the_first_page_is_read_from_the_index_without_sorting_every_open_incident(
    web: Service, severity: str
) -> None:
    Incident.objects.bulk_create(
        Incident(
            service=web,
            title=f"bulk {n}",
            severity=Severity.values[n % 4],
            opened_at=T0 + timedelta(seconds=n),
        )
        for n in range(3000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE incidents_incident")
    first_page = selectors.dashboard_incidents(selectors.IncidentFilter(severity=severity))[:25]
    plan = json.loads(first_page.explain(format="json"))[0]["Plan"]
    limit = next(node for node in _nodes(plan) if node["Node Type"] == "Limit")
    below = _nodes(limit)
    assert any(node.get("Index Name") == "incident_open_dashboard" for node in below)
    assert not any(node["Node Type"] in ("Sort", "Incremental Sort") for node in below)


def test_a_change_commits_while_redis_is_down(
    alice_client: Client, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    incident = IncidentFactory(title="acknowledged anyway")
    request.getfixturevalue("redis_unreachable")  # Redis down from here on
    services.acknowledge_incident(incident, actor=None)
    assert Incident.objects.get(pk=incident.pk).status == "acknowledged"
    assert "the read model's version was not bumped" in caplog.text


def test_a_paged_event_that_names_nobody_in_a_list_shows_nobody(alice_client: Client) -> None:
    incident = IncidentFactory(title="odd event")
    incident.timeline.create(
        kind="paged", data={"paged": "not a list"}, created_at=incident.opened_at
    )
    assert '<td class="reach">—</td>' in row_html(alice_client, incident)


def test_an_unchanged_poll_does_not_read_the_cached_list(
    alice_client: Client, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answering 304 reads the version and a small stamp entry in one round
    trip (and the session), never the listing a full answer is built from."""
    for n in range(30):
        IncidentFactory(title=f"incident {n}")
    etag = poll(alice_client)["ETag"]
    sent: list[tuple[Any, ...]] = []
    execute = Redis.execute_command

    def spy(self: Redis, *args: Any, **options: Any) -> Any:
        sent.append(args)
        return execute(self, *args, **options)

    monkeypatch.setattr(Redis, "execute_command", spy)
    assert poll(alice_client, etag).status_code == 304
    assert not [args for args in sent if "dashboard:" in str(args[1:]) and args[0] == "GET"]
    assert len(sent) <= 2, sent  # the session, then the version with the stamp


def test_after_a_change_only_the_rows_that_changed_are_rendered_again(
    alice_client: Client, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    incidents = [IncidentFactory(title=f"incident {n}") for n in range(5)]
    from incidents import rowcache

    rendered: list[int] = []
    original = rowcache.get_template

    def counting(name: str) -> Any:
        template = original(name)

        class Counting:
            def __getattr__(self, name: str) -> Any:
                return getattr(template, name)

            def render(self, context: dict[str, Any]) -> str:
                rendered.append(context["incident"].pk)
                return str(template.render(context))

        return Counting()

    monkeypatch.setattr(rowcache, "get_template", counting)
    alice_client.get("/")
    assert sorted(rendered) == sorted(i.pk for i in incidents)
    rendered.clear()
    services.acknowledge_incident(incidents[2], actor=None)
    row = row_html(alice_client, incidents[2])
    assert '<span class="status acknowledged">Acknowledged</span>' in row
    assert rendered == [incidents[2].pk]


def test_without_redis_an_unchanged_poll_is_answered_in_full(
    alice_client: Client, request: pytest.FixtureRequest
) -> None:
    IncidentFactory(title="still listed")
    request.getfixturevalue("redis_unreachable")  # Redis down from here on
    response = poll(alice_client, '"an etag from before the outage"')
    assert response.status_code == 200
    assert "still listed" in response.content.decode()
