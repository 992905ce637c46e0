"""The public pages (status, post-mortem index, published post-mortems) show
nothing private, and nothing else is reachable without logging in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from time_machine import TimeMachineFixture

from incidents import services as incident_services
from incidents.models import Service, Source
from paging.models import MaintenanceWindow
from postmortems.services import update_postmortem
from postmortems.status import ServiceState, state_for
from tests.factories import IncidentFactory, ServiceFactory
from tests.postmortem_factories import action_item, postmortem, published, resolved_incident

pytestmark = pytest.mark.django_db


def public(service: Service) -> Service:
    """Made public by staff, under its own name."""
    Service.objects.filter(pk=service.pk).update(public=True, public_name=service.name)
    service.refresh_from_db()
    return service


def titled(incident: Any, title: str) -> Any:
    """Named for the status page by a responder."""
    return incident_services.set_public_title(incident, actor=None, title=title)


def test_service_states_follow_the_worst_open_severity() -> None:
    assert state_for([]) == ServiceState.OPERATIONAL
    assert state_for(["info", "warning"]) == ServiceState.DEGRADED
    assert state_for(["warning", "error"]) == ServiceState.INCIDENT
    assert state_for(["critical"]) == ServiceState.INCIDENT
    assert state_for([], in_maintenance=True) == ServiceState.MAINTENANCE


def test_the_status_page_shows_each_service_and_its_incidents(
    client: Client, web: Service, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(datetime(2026, 4, 14, 12, 0, tzinfo=UTC), tick=False)
    web = public(web)
    dns = public(ServiceFactory(name="DNS", slug="dns"))
    public(ServiceFactory(name="Mail", slug="mail"))
    titled(IncidentFactory(service=web, severity="critical"), "Checkout returns 502")
    titled(IncidentFactory(service=dns, severity="warning"), "Slow lookups")
    time_machine.shift(timedelta(minutes=30))

    response = client.get("/status")

    html = response.content.decode()
    assert response.status_code == 200
    assert "public" in response["Cache-Control"]
    assert "Checkout returns 502" in html
    assert "SEV1" in html
    assert "2026-04-14 12:00" in html
    assert '<span>Web shop</span> <span class="pill incident">Incident</span>' in html
    assert '<span>DNS</span> <span class="pill degraded">Degraded</span>' in html
    assert '<span>Mail</span> <span class="pill operational">Operational</span>' in html
    assert "Some services have problems" in html


def test_a_service_in_a_maintenance_window_shows_maintenance(
    client: Client, web: Service, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(datetime(2026, 4, 14, 12, 0, tzinfo=UTC), tick=False)
    now = datetime(2026, 4, 14, 12, 0, tzinfo=UTC)
    web = public(web)
    MaintenanceWindow.objects.create(
        service=web, start=now - timedelta(minutes=5), end=now + timedelta(hours=1)
    )
    over = public(ServiceFactory(name="Mail", slug="mail"))
    MaintenanceWindow.objects.create(
        service=over, start=now - timedelta(hours=2), end=now - timedelta(hours=1)
    )

    html = client.get("/status").content.decode()

    assert '<span>Web shop</span> <span class="pill maintenance">Maintenance</span>' in html
    assert '<span>Mail</span> <span class="pill operational">Operational</span>' in html


def test_all_clear_when_nothing_is_open(client: Client, web: Service) -> None:
    assert "All services are operating normally" in client.get("/status").content.decode()


def test_the_status_page_leaks_no_notes_people_details_or_dedup_keys(
    client: Client, alice: User, web: Service, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(datetime(2026, 4, 14, 12, 0, tzinfo=UTC), tick=False)
    web = public(web)
    open_one = IncidentFactory(
        service=web,
        title="Checkout returns 502",
        details="PRIVATE-DETAILS db password rotated",
        dedup_key="PRIVATE-DEDUP-KEY",
        actor=alice,
    )
    titled(open_one, "Checkout returns 502")
    incident_services.add_note(open_one, actor=alice, text="PRIVATE-NOTE call the vendor")
    incident_services.acknowledge_incident(open_one, actor=alice)
    closed = IncidentFactory(
        service=web, title="Disk full", details="PRIVATE-DETAILS-2", dedup_key="PRIVATE-KEY-2"
    )
    titled(closed, "Disk full")
    incident_services.add_note(closed, actor=alice, text="PRIVATE-NOTE-2")
    incident_services.resolve_incident(closed, actor=alice)
    pm = postmortem(closed, actor=alice)
    update_postmortem(pm, actor=alice, summary="PRIVATE-SUMMARY")
    published(pm)
    IncidentFactory(service=web, title="Typed by a stranger", source=Source.REPORT)

    html = client.get("/status").content.decode()
    partial = client.get("/status", headers={"HX-Request": "true"}).content.decode()

    assert "Checkout returns 502" in html
    assert "Disk full" in html
    assert f'href="/postmortems/{pm.pk}"' in html
    assert "Investigating an issue with Web shop" in html  # nobody named it for the public
    assert partial.lstrip().startswith('<div id="status-body"')
    for page in (html, partial):
        for secret in ("PRIVATE", "alice", "Typed by a stranger", "Acknowledged", "escalat"):
            assert secret not in page


def test_the_status_page_costs_the_same_queries_however_many_incidents(
    client: Client, web: Service
) -> None:
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/status").status_code == 200
        return len(captured)

    web = public(web)
    IncidentFactory(service=web)
    postmortem(resolved_incident(service=web))
    few = queries()
    for _ in range(5):
        IncidentFactory(service=public(ServiceFactory()))
        published(postmortem(resolved_incident(service=web)))
    assert queries() == few


def test_resolved_incidents_drop_off_after_a_week(
    client: Client, web: Service, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(datetime(2026, 4, 1, 12, 0, tzinfo=UTC), tick=False)
    web = public(web)
    titled(resolved_incident(service=web), "Long ago")
    time_machine.shift(timedelta(days=5))
    titled(resolved_incident(service=web), "This week")
    time_machine.shift(timedelta(days=3))
    html = client.get("/status").content.decode()
    assert "This week" in html
    assert "Long ago" not in html


def test_a_published_post_mortem_is_public_and_read_only(client: Client, alice: User) -> None:
    pm = postmortem(actor=alice)
    action_item(pm, action="Add NFS alert", details="first line\nsecond line")
    update_postmortem(pm, actor=alice, summary="The **NFS** server hung.")
    published(pm)

    response = client.get(f"/postmortems/{pm.pk}")

    html = response.content.decode()
    assert response.status_code == 200
    assert "The <strong>NFS</strong> server hung." in html
    assert "<th>Priority</th>" in html
    assert "Add NFS alert" in html
    assert "first line<br>second line" in html
    assert "Edit</a>" not in html
    assert 'name="csrfmiddlewaretoken"' not in html
    markdown = client.get(f"/postmortems/{pm.pk}.md")
    assert markdown.status_code == 200
    assert "## Prevention Plan" in markdown.content.decode()


def test_the_index_lists_only_published_post_mortems(client: Client) -> None:
    shown = published(postmortem(resolved_incident(title="Published outage")))
    postmortem(resolved_incident(title="Draft outage"))
    html = client.get("/postmortems/").content.decode()
    assert "Published outage" in html
    assert f'href="/postmortems/{shown.pk}"' in html
    assert "Draft outage" not in html


def test_an_empty_index_says_so(client: Client) -> None:
    assert "No post-mortem has been published yet" in client.get("/postmortems/").content.decode()


def private_urls(draft_pk: int, published_pk: int, item_pk: int, incident_pk: int) -> list[Any]:
    return [
        ("get", f"/postmortems/{draft_pk}"),
        ("get", f"/postmortems/{draft_pk}.md"),
        ("get", "/postmortems/999999"),
        ("get", f"/postmortems/{published_pk}/todos"),
        ("get", f"/postmortems/{published_pk}/followups"),
        ("get", f"/postmortems/{published_pk}/sections/summary"),
        ("post", f"/postmortems/{published_pk}/sections/summary"),
        ("post", f"/postmortems/{published_pk}/status"),
        ("post", f"/postmortems/{published_pk}/actions"),
        ("get", f"/postmortems/{published_pk}/actions/{item_pk}"),
        ("post", f"/postmortems/{published_pk}/actions/{item_pk}/status"),
        ("post", f"/postmortems/{published_pk}/actions/{item_pk}/done"),
        ("post", f"/incidents/{incident_pk}/postmortem"),
        ("get", "/"),
        ("get", f"/incidents/{incident_pk}"),
    ]


def test_anonymous_visitors_reach_only_the_public_pages(client: Client, web: Service) -> None:
    draft = postmortem()
    public = published(postmortem())
    item = action_item(public)
    incident = resolved_incident()

    for method, url in private_urls(draft.pk, public.pk, item.pk, incident.pk):
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login"), url

    for url in ("/report", "/status", "/postmortems/", f"/postmortems/{public.pk}"):
        assert client.get(url).status_code == 200, url
