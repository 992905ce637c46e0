"""Nothing private reaches the public pages: the status page lists only public
services under their public names with titles people wrote, a published
post-mortem shows only the sections written for publication, the editor's
public preview is that same page, and only publishers may publish."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from time_machine import TimeMachineFixture

from incidents import services as incident_services
from incidents.models import EventKind, Incident, Service
from incidents.timeline import record_event
from postmortems import document
from postmortems.models import PostMortem
from postmortems.services import record_followup
from tests.factories import IncidentFactory, ServiceFactory, UserFactory
from tests.postmortem_factories import action_item, postmortem, published

pytestmark = pytest.mark.django_db

MONITORING_TITLE = "Disk 97% full on pg-primary-10.0.3.14:/var/lib/postgresql (customer_prod)"
PRIVATE = ["pg-primary", "10.0.3.14", "customer_prod", "Disk 97%", "/var/lib/postgresql"]
NOTE = "Rolled back deploy 42 on pg-primary-10.0.3.14"


@pytest.fixture
def database() -> Service:
    return ServiceFactory(
        name="pg-primary customer_prod", slug="pg", public=True, public_name="Database"
    )


@pytest.fixture
def admin(db: None) -> User:
    return UserFactory(username="admin", is_staff=True)


def titled(incident: Incident, title: str) -> Incident:
    return incident_services.set_public_title(incident, actor=None, title=title)


def _absent(html: str, words: list[str]) -> None:
    for word in words:
        assert word not in html, word


def _public_body(html: str) -> str:
    match = re.search(
        r'<article class="markdown postmortem-public" id="public-body">(.*?)</article>', html, re.S
    )
    assert match is not None, html
    return match.group(1)


def test_the_status_page_never_shows_a_monitoring_title(client: Client, database: Service) -> None:
    IncidentFactory(
        service=database,
        title=MONITORING_TITLE,
        details="mount /dev/sdb1 on pg-primary-10.0.3.14",
        dedup_key="disk-pg-primary-10.0.3.14",
    )
    resolved = IncidentFactory(service=database, title=MONITORING_TITLE + " again")
    incident_services.resolve_incident(resolved, actor=None)

    html = client.get("/status").content.decode()

    _absent(html, [*PRIVATE, "pg-primary customer_prod"])
    assert html.count("Investigating an issue with Database") == 2
    assert '<span>Database</span> <span class="pill incident">Incident</span>' in html


def test_a_service_not_made_public_is_not_on_the_status_page(
    client: Client, web: Service, database: Service
) -> None:
    titled(IncidentFactory(service=web, title="Checkout returns 502"), "Checkout is slow")
    incident_services.resolve_incident(
        titled(IncidentFactory(service=web), "Payments failed"), actor=None
    )

    html = client.get("/status").content.decode()

    _absent(html, ["Web shop", "Checkout", "Payments failed"])
    assert "All services are operating normally" in html
    assert "<span>Database</span>" in html


def test_a_responder_writes_the_public_title(
    client: Client, alice_client: Client, database: Service
) -> None:
    incident = IncidentFactory(service=database, title=MONITORING_TITLE)
    page = alice_client.get(f"/incidents/{incident.pk}").content.decode()
    assert "Shown as “Investigating an issue with Database” under Database" in page

    saved = alice_client.post(
        f"/incidents/{incident.pk}/public-title", {"public_title": "  Slow   database  "}
    )
    too_long = alice_client.post(
        f"/incidents/{incident.pk}/public-title",
        {"public_title": "x" * 201},
        headers={"HX-Request": "true"},
    )

    assert saved.status_code == 302
    assert too_long.status_code == 422
    incident.refresh_from_db()
    assert incident.public_title == "Slow database"
    assert incident.timeline.filter(message="Public title: Slow database").exists()
    html = client.get("/status").content.decode()
    assert "Slow database" in html
    _absent(html, [*PRIVATE, "Investigating an issue"])


def test_a_public_title_left_empty_shows_the_default_sentence(
    alice_client: Client, client: Client, database: Service
) -> None:
    incident = titled(IncidentFactory(service=database), "Slow database")

    alice_client.post(f"/incidents/{incident.pk}/public-title", {"public_title": ""})

    assert "Investigating an issue with Database" in client.get("/status").content.decode()


def _published_with_private_timeline(admin: User, alice: User, database: Service) -> PostMortem:
    incident = IncidentFactory(service=database, title=MONITORING_TITLE)
    record_event(incident, EventKind.PAGED, actor=None, now=timezone.now(), message="Paged alice")
    incident_services.add_note(incident, actor=admin, text=NOTE)
    incident = incident_services.resolve_incident(incident, actor=alice)
    pm = postmortem(incident, actor=admin)
    PostMortem.objects.filter(pk=pm.pk).update(
        title="Database outage", summary="The database ran out of disk."
    )
    item = action_item(pm, action="Add a disk usage alert", details="80% threshold")
    record_followup(item, actor=alice, implemented_by="alice", commit="abc1234")
    action_item(pm, action="Tune autovacuum", type="Config")
    return published(PostMortem.objects.get(pk=pm.pk))


def test_a_published_postmortem_shows_no_notes_names_or_hosts(
    client: Client, alice_client: Client, admin: User, alice: User, database: Service
) -> None:
    pm = _published_with_private_timeline(admin, alice, database)

    page = client.get(f"/postmortems/{pm.pk}").content.decode()
    markdown = client.get(f"/postmortems/{pm.pk}.md").content.decode()
    index = client.get("/postmortems/").content.decode()
    status = client.get("/status").content.decode()

    for html in (page, markdown, index, status):
        _absent(html, [*PRIVATE, "Rolled back", "Paged alice", "Owner", "admin", "alice"])
    for text in (page, markdown):
        assert "The database ran out of disk." in text
        assert "Tune autovacuum" in text
        _absent(text, ["Timeline", "Follow-up Implementation"])
    internal = alice_client.get(f"/postmortems/{pm.pk}.md").content.decode()
    assert NOTE in internal
    assert "- **Owner:** admin" in internal


def test_the_public_export_leaves_out_the_timeline_unless_internal(
    tmp_path: Path, admin: User, alice: User, database: Service
) -> None:
    pm = _published_with_private_timeline(admin, alice, database)

    call_command("export_postmortems", str(tmp_path / "site"))
    call_command("export_postmortems", str(tmp_path / "internal"), "--internal")

    name = document.export_filename(pm)
    public = (tmp_path / "site" / name).read_text()
    _absent(public, [*PRIVATE, "Rolled back", "admin", "alice"])
    assert NOTE in (tmp_path / "internal" / name).read_text()


def test_the_public_preview_is_the_public_page(
    client: Client, alice_client: Client, root: User, alice: User, database: Service
) -> None:
    incident = incident_services.resolve_incident(
        IncidentFactory(service=database, title=MONITORING_TITLE), actor=alice
    )
    incident_services.add_note(incident, actor=alice, text=NOTE)
    pm = postmortem(incident, actor=alice)
    action_item(pm, action="Add a disk usage alert")

    preview = alice_client.get(f"/postmortems/{pm.pk}/preview")
    editor = alice_client.get(f"/postmortems/{pm.pk}").content.decode()
    root_client = Client()
    root_client.force_login(root)
    root_client.post(f"/postmortems/{pm.pk}/status", {"status": "published"})
    public = client.get(f"/postmortems/{pm.pk}")

    assert preview.status_code == 200
    assert f'href="/postmortems/{pm.pk}/preview"' in editor
    assert "Public preview" in preview.content.decode()
    assert public.status_code == 200
    assert _public_body(preview.content.decode()) == _public_body(public.content.decode())
    _absent(_public_body(public.content.decode()), ["Rolled back", "alice"])


def test_a_responder_without_the_permission_cannot_publish(
    alice_client: Client, alice: User
) -> None:
    pm = postmortem()

    page = alice_client.get(f"/postmortems/{pm.pk}").content.decode()
    refused = alice_client.post(f"/postmortems/{pm.pk}/status", {"status": "published"})
    refused_htmx = alice_client.post(
        f"/postmortems/{pm.pk}/status", {"status": "published"}, headers={"HX-Request": "true"}
    )

    assert ">Publish</button>" not in page
    assert "may publish" in page
    assert refused.status_code == 403
    assert "Only staff or people with the “Can publish post-mortems” permission" in (
        refused.content.decode()
    )
    assert refused_htmx.status_code == 403
    pm.refresh_from_db()
    assert (pm.status, pm.published_at) == ("draft", None)
    assert not pm.incident.timeline.filter(message__startswith="Post-mortem published").exists()


def test_the_publish_permission_lets_a_responder_publish(
    alice_client: Client, alice: User, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(datetime(2026, 4, 14, 9, 30, tzinfo=UTC), tick=False)
    alice.user_permissions.add(Permission.objects.get(codename="publish_postmortem"))
    pm = postmortem()

    assert ">Publish</button>" in alice_client.get(f"/postmortems/{pm.pk}").content.decode()
    answer = alice_client.post(f"/postmortems/{pm.pk}/status", {"status": "published"})

    assert answer.status_code == 302
    pm.refresh_from_db()
    assert pm.status == "published"


def test_staff_make_a_service_public_only_with_a_public_name(root: User) -> None:
    client = Client()
    client.force_login(root)
    form = {
        "name": "pg-primary",
        "slug": "pg",
        "description": "",
        "public": "on",
        "public_name": "",
    }

    refused = client.post("/admin/incidents/service/add/", form)
    saved = client.post("/admin/incidents/service/add/", {**form, "public_name": "Database"})

    assert refused.status_code == 200
    assert "A public service needs a public name." in refused.content.decode()
    assert saved.status_code == 302
    assert Service.objects.get().public_name == "Database"


def test_incidents_of_a_new_service_stay_private(client: Client) -> None:
    service = Service.objects.create(name="billing-db-10.0.4.2", slug="billing")
    Incident.objects.create(
        service=service, title="billing down", severity="critical", opened_at=timezone.now()
    )

    html = client.get("/status").content.decode()

    _absent(html, ["billing"])


def test_a_refused_public_title_changes_nothing(alice_client: Client, database: Service) -> None:
    incident = titled(IncidentFactory(service=database), "Slow database")

    refused = alice_client.post(
        f"/incidents/{incident.pk}/public-title", {"public_title": "x" * 201}
    )
    alice_client.post(f"/incidents/{incident.pk}/public-title", {"public_title": "Slow database"})

    assert refused.status_code == 302
    incident.refresh_from_db()
    assert incident.public_title == "Slow database"
    assert incident.timeline.filter(message__startswith="Public title").count() == 1
    page = alice_client.get(f"/incidents/{incident.pk}").content.decode()
    assert "A public title has at most 200 characters." in page


def test_an_incident_of_a_private_service_says_it_is_not_shown(
    alice_client: Client, web: Service
) -> None:
    incident = IncidentFactory(service=web)

    page = alice_client.get(f"/incidents/{incident.pk}").content.decode()

    assert "Not shown: Web shop is not a public service" in page


def test_a_postmortem_is_drafted_under_the_public_title(database: Service) -> None:
    incident = titled(IncidentFactory(service=database, title=MONITORING_TITLE), "Slow database")

    pm = postmortem(incident_services.resolve_incident(incident, actor=None))

    assert (pm.title, pm.slug, pm.affected_services) == (
        "Slow database",
        "slow-database",
        "Database",
    )
