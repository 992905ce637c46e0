"""Drafting a post-mortem from a resolved incident: the service, the incident
page's panel and the dashboard's suggestions."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.template import Context, Template
from django.test import Client, RequestFactory
from time_machine import TimeMachineFixture

from accounts.tokens import NewToken
from incidents import services as incident_services
from incidents.models import Service
from postmortems import document, services
from postmortems.errors import IncidentStillOpen
from postmortems.models import PostMortem
from tests.factories import IncidentFactory
from tests.postmortem_factories import postmortem, resolved_incident

pytestmark = pytest.mark.django_db


def test_a_draft_copies_the_incidents_facts_and_timeline(
    alice: User, web: Service, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(datetime(2026, 4, 14, 14, 2, tzinfo=UTC), tick=False)
    incident = IncidentFactory(service=web, title="Checkout returns 502", severity="critical")
    time_machine.shift(timedelta(minutes=5))
    incident_services.add_note(incident, actor=alice, text="Rolled back\ndeploy 42")
    time_machine.shift(timedelta(minutes=78))
    incident_services.resolve_incident(incident, actor=alice)

    drafted = services.draft_postmortem(incident, actor=alice)

    pm = drafted.post_mortem
    assert drafted.created
    assert (pm.title, pm.slug, pm.severity) == (
        "Checkout returns 502",
        "checkout-returns-502",
        "critical",
    )
    assert pm.affected_services == "Web shop"
    assert pm.owner == alice
    assert pm.duration == timedelta(minutes=83)
    assert "**14:07:00** Note (alice): Rolled back deploy 42" in pm.timeline
    assert "Resolved (alice)" in pm.timeline
    # What people write starts empty (the editor shows placeholders).
    assert (pm.summary, pm.impact, pm.root_cause_chain, pm.lessons) == ("", "", [], "")
    text = document.postmortem_markdown(pm, [])
    assert "- **Date:** 2026-04-14" in text
    assert "- **Duration:** 1h 23m" in text
    assert "- **Severity:** SEV1 (critical)" in text
    assert "- **Affected services:** Web shop" in text
    assert document.PREVENTION_HEADER + "\n\n## Follow-up Implementation" in text
    assert text.rstrip().endswith(document.FOLLOWUP_HEADER)
    assert document.export_filename(pm) == "2026-04-14-checkout-returns-502.md"


def test_an_open_incident_cannot_have_a_post_mortem_yet() -> None:
    with pytest.raises(IncidentStillOpen, match="resolve it before drafting"):
        services.draft_postmortem(IncidentFactory(), actor=None)
    assert not PostMortem.objects.exists()


def test_drafting_twice_returns_the_first_draft() -> None:
    incident = resolved_incident()
    first = services.draft_postmortem(incident, actor=None)
    again = services.draft_postmortem(incident, actor=None)
    assert again.post_mortem.pk == first.post_mortem.pk
    assert not again.created
    assert PostMortem.objects.count() == 1


def test_a_taken_slug_gets_the_incident_number() -> None:
    first = postmortem(resolved_incident(title="Disk full"))
    second_incident = resolved_incident(title="Disk full")
    second = postmortem(second_incident)
    assert first.slug == "disk-full"
    assert second.slug == f"disk-full-{second_incident.pk}"


@pytest.mark.django_db(transaction=True)
def test_ten_parallel_drafts_of_one_incident_make_one_post_mortem(alice: User) -> None:
    incident = resolved_incident()
    barrier = threading.Barrier(10)
    ids: list[int] = []
    lock = threading.Lock()

    def draft() -> None:
        try:
            barrier.wait()
            client = Client()
            client.force_login(alice)
            response = client.post(f"/incidents/{incident.pk}/postmortem")
            with lock:
                ids.append(int(response["Location"].rsplit("/", 1)[1]))
        finally:
            connection.close()

    threads = [threading.Thread(target=draft) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert PostMortem.objects.count() == 1
    assert set(ids) == {PostMortem.objects.get().pk}


def test_the_incident_page_offers_a_draft_once_resolved(alice_client: Client) -> None:
    incident = IncidentFactory()
    assert "Draft post-mortem" not in alice_client.get(f"/incidents/{incident.pk}").content.decode()
    incident_services.resolve_incident(incident, actor=None)
    html = alice_client.get(f"/incidents/{incident.pk}").content.decode()
    assert "Draft post-mortem" in html
    assert f'action="/incidents/{incident.pk}/postmortem"' in html


def test_the_draft_button_opens_the_new_post_mortem_then_the_page_links_to_it(
    alice_client: Client,
) -> None:
    incident = resolved_incident(title="Queue backlog")
    response = alice_client.post(f"/incidents/{incident.pk}/postmortem", follow=True)
    pm = PostMortem.objects.get()
    assert response.redirect_chain == [(f"/postmortems/{pm.pk}", 302)]
    assert "Queue backlog" in response.content.decode()
    assert "Post-mortem drafted" in response.content.decode()
    html = alice_client.get(f"/incidents/{incident.pk}").content.decode()
    assert "View post-mortem" in html
    assert "Draft post-mortem" not in html


def test_drafting_an_open_incident_from_the_browser_explains_why_not(alice_client: Client) -> None:
    incident = IncidentFactory()
    response = alice_client.post(f"/incidents/{incident.pk}/postmortem", follow=True)
    assert "resolve it before drafting" in response.content.decode()
    assert not PostMortem.objects.exists()


def test_api_clients_draft_with_a_write_token(client: Client, write_token: NewToken) -> None:
    incident = resolved_incident()
    headers = {"Authorization": f"Bearer {write_token.raw}"}
    first = client.post(f"/incidents/{incident.pk}/postmortem", headers=headers)
    again = client.post(f"/incidents/{incident.pk}/postmortem", headers=headers)
    assert first.status_code == 201
    assert again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["todos_url"] == f"/postmortems/{first.json()['id']}/todos"
    still_open = client.post(f"/incidents/{IncidentFactory().pk}/postmortem", headers=headers)
    assert still_open.status_code == 409
    assert still_open["Content-Type"] == "application/problem+json"
    missing = client.post("/incidents/999999/postmortem", headers=headers)
    assert missing.status_code == 404


def test_read_tokens_cannot_draft(client: Client, read_token: NewToken) -> None:
    incident = resolved_incident()
    response = client.post(
        f"/incidents/{incident.pk}/postmortem",
        headers={"Authorization": f"Bearer {read_token.raw}"},
    )
    assert response.status_code == 403


def render_suggestions(user: User) -> str:
    request = RequestFactory().get("/")
    request.user = user
    template = Template("{% load postmortems %}{% postmortem_suggestions %}")
    return template.render(Context({"request": request, "csrf_token": "tok"}))


def test_the_dashboard_suggests_post_mortems_for_this_weeks_resolved_incidents(
    alice: User, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(datetime(2026, 4, 1, 12, 0, tzinfo=UTC), tick=False)
    resolved_incident(title="Old outage")
    time_machine.shift(timedelta(days=6))
    recent = resolved_incident(title="Recent outage")
    written = resolved_incident(title="Already written up")
    postmortem(written)
    IncidentFactory(title="Still open")
    time_machine.shift(timedelta(days=2))

    html = render_suggestions(alice)

    assert "Recent outage" in html
    assert f'action="/incidents/{recent.pk}/postmortem"' in html
    assert 'value="tok"' in html
    for absent in ("Old outage", "Already written up", "Still open"):
        assert absent not in html


def test_no_suggestions_render_nothing(alice: User) -> None:
    assert render_suggestions(alice).strip() == ""


def test_the_dashboard_page_offers_a_draft_for_a_resolved_incident(alice_client: Client) -> None:
    incident = resolved_incident(title="Payments timed out")

    page = alice_client.get("/").content.decode()

    assert "Resolved this week, no post-mortem yet" in page
    assert f'action="/incidents/{incident.pk}/postmortem"' in page
    response = alice_client.post(f"/incidents/{incident.pk}/postmortem")
    assert response.status_code == 302
    assert PostMortem.objects.filter(incident=incident).exists()
    assert "Payments timed out" not in alice_client.get("/").content.decode()
