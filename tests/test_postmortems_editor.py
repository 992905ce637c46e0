"""The post-mortem page: htmx inline editing of sections and action items."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from incidents.models import EventKind
from postmortems.models import ActionItem, ActionStatus, PostMortem, PostMortemStatus
from tests.postmortem_factories import action_item, postmortem

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


def test_the_page_shows_every_section_and_the_prevention_plan(alice_client: Client) -> None:
    pm = postmortem()
    action_item(pm, action="Add NFS alert", type="Alert")
    action_item(pm, action="Migrate Vault", type="Migration", priority="P1")
    html = alice_client.get(f"/postmortems/{pm.pk}").content.decode()
    for heading in ("Summary", "Impact", "Timeline", "Root cause chain", "Lessons learned"):
        assert f"<h2>{heading}</h2>" in html
    assert "Prevention Plan" in html
    assert "Follow-up Implementation" in html
    assert "Add NFS alert" in html
    assert 'class="pill safe"' in html
    assert 'class="pill review"' in html
    assert "Needs human review" in html  # the Migration, in the follow-up table


def test_editing_a_section_swaps_in_a_form_then_the_rendered_markdown(
    alice_client: Client,
) -> None:
    pm = postmortem()
    url = f"/postmortems/{pm.pk}/sections/summary"
    form = alice_client.get(url + "?edit=1", headers=HTMX)
    assert form.status_code == 200
    assert form.content.decode().lstrip().startswith('<section id="section-summary"')
    assert 'name="summary-text"' in form.content.decode()

    saved = alice_client.post(url, {"summary-text": "The **NFS** server hung."}, headers=HTMX)

    assert saved.status_code == 200
    assert "The <strong>NFS</strong> server hung." in saved.content.decode()
    assert PostMortem.objects.get().summary == "The **NFS** server hung."
    cancel = alice_client.get(url, headers=HTMX)
    assert "<strong>NFS</strong>" in cancel.content.decode()


def test_markdown_is_rendered_safely(alice_client: Client) -> None:
    pm = postmortem()
    evil = "<script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=alert(1)>"
    saved = alice_client.post(
        f"/postmortems/{pm.pk}/sections/lessons", {"lessons-text": evil}, headers=HTMX
    )
    html = saved.content.decode()
    assert "<script>" not in html
    assert "alert(1)</script>" not in html
    assert "<img" not in html
    assert "onerror" not in html
    assert 'href="javascript:' not in html
    assert PostMortem.objects.get().lessons == evil  # stored as written, cleaned when shown


def test_the_root_cause_chain_is_an_ordered_list_of_lines(alice_client: Client) -> None:
    pm = postmortem()
    steps = "1. Disk filled up\n\n2) Postgres stopped accepting writes\n- Checkout failed\n"
    response = alice_client.post(
        f"/postmortems/{pm.pk}/sections/root-cause", {"root-cause-steps": steps}, headers=HTMX
    )
    assert response.status_code == 200
    assert PostMortem.objects.get().root_cause_chain == [
        "Disk filled up",
        "Postgres stopped accepting writes",
        "Checkout failed",
    ]
    assert "<ol>" in response.content.decode()


def test_the_header_changes_title_services_and_owner(alice_client: Client, alice: User) -> None:
    pm = postmortem()
    response = alice_client.post(
        f"/postmortems/{pm.pk}/sections/header",
        {
            "header-title": "NFS outage",
            "header-affected_services": "NFS, Vault",
            "header-owner": "alice",
        },
        headers=HTMX,
    )
    assert response.status_code == 200
    pm.refresh_from_db()
    assert (pm.title, pm.affected_services, pm.owner) == ("NFS outage", "NFS, Vault", alice)


def test_an_invalid_section_shows_the_errors_and_keeps_the_old_text(alice_client: Client) -> None:
    pm = postmortem()
    url = f"/postmortems/{pm.pk}/sections/header"
    response = alice_client.post(url, {"header-title": "", "header-owner": "nobody"}, headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 422
    assert "This field is required" in html
    assert "Unknown user" in html
    no_js = alice_client.post(url, {"header-title": ""})
    assert no_js.status_code == 422
    assert PostMortem.objects.get().title == pm.title


def test_without_javascript_sections_are_edited_on_the_page(alice_client: Client) -> None:
    pm = postmortem()
    url = f"/postmortems/{pm.pk}/sections/impact"
    redirect = alice_client.get(url)
    assert redirect["Location"] == f"/postmortems/{pm.pk}?edit=impact#section-impact"
    page = alice_client.get(f"/postmortems/{pm.pk}?edit=impact").content.decode()
    assert 'name="impact-text"' in page
    saved = alice_client.post(url, {"impact-text": "All users"})
    assert saved["Location"] == f"/postmortems/{pm.pk}#section-impact"
    assert PostMortem.objects.get().impact == "All users"


def test_adding_an_action_item_returns_the_refreshed_plan(alice_client: Client) -> None:
    pm = postmortem()
    response = alice_client.post(
        f"/postmortems/{pm.pk}/actions",
        {"priority": "P1", "action": " Add   NFS alert ", "type": "alert", "details": "x"},
        headers=HTMX,
    )
    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith('<section id="action-items"')
    assert "postmortem-changed" in json.loads(response["HX-Trigger"])
    item = ActionItem.objects.get()
    assert (item.priority, item.action, item.type, item.status) == (
        "P1",
        "Add NFS alert",
        "Alert",
        "todo",
    )
    assert item.safe


def test_an_unknown_type_is_refused_with_the_list_of_types(alice_client: Client) -> None:
    pm = postmortem()
    response = alice_client.post(
        f"/postmortems/{pm.pk}/actions",
        {"priority": "P1", "action": "Buy disks", "type": "Purchase"},
        headers=HTMX,
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "Unknown type &#x27;Purchase&#x27;" in html
    assert "Architecture, Investigation, Migration, Runbook" in html
    assert not ActionItem.objects.exists()


def test_editing_an_action_item_row_in_place(alice_client: Client, alice: User) -> None:
    pm = postmortem()
    item = action_item(pm)
    url = f"/postmortems/{pm.pk}/actions/{item.pk}"
    form = alice_client.get(url + "?edit=1", headers=HTMX).content.decode()
    assert form.lstrip().startswith(f'<tr id="item-{item.pk}" class="editing">')
    assert "Record the follow-up" in form

    saved = alice_client.post(
        url,
        {
            "priority": "P0",
            "action": "Add inode alert",
            "type": "Monitor",
            "details": "",
            "owner": "alice",
        },
        headers=HTMX,
    )

    assert saved.status_code == 200
    assert (
        saved.content.decode().lstrip().startswith(f'<tr id="item-{item.pk}" class="status-todo">')
    )
    item.refresh_from_db()
    assert (item.priority, item.action, item.type, item.owner) == (
        "P0",
        "Add inode alert",
        "Monitor",
        alice,
    )
    bad = alice_client.post(url, {"priority": "P7", "action": "", "type": "Alert"}, headers=HTMX)
    assert bad.status_code == 422
    assert "Unknown priority P7" in bad.content.decode()
    assert alice_client.get(url, headers=HTMX).status_code == 200


def test_changing_an_items_status_to_done_notes_it_on_the_incident(
    alice_client: Client,
) -> None:
    pm = postmortem()
    item = action_item(pm, action="Add NFS alert")
    url = f"/postmortems/{pm.pk}/actions/{item.pk}/status"

    response = alice_client.post(url, {"status": "done"}, headers=HTMX)

    assert response.status_code == 200
    item.refresh_from_db()
    assert item.status == ActionStatus.DONE
    assert item.implemented_by == "alice"
    note = pm.incident.timeline.filter(kind=EventKind.NOTE).get()
    assert "Follow-up done: P2 Add NFS alert (Alert)" in note.message
    followups = alice_client.get(f"/postmortems/{pm.pk}/followups", headers=HTMX).content.decode()
    assert "Add NFS alert" in followups

    back = alice_client.post(url, {"status": "todo"})
    assert back.status_code == 302
    item.refresh_from_db()
    assert (item.status, item.done_at, item.implemented_by) == ("todo", None, "")
    bad = alice_client.post(url, {"status": "finished"}, headers=HTMX)
    assert bad.status_code == 422
    assert "Unknown status finished" in bad.content.decode()


def test_recording_a_follow_up_from_the_page(alice_client: Client) -> None:
    pm = postmortem()
    item = action_item(pm)
    url = f"/postmortems/{pm.pk}/actions/{item.pk}/done"
    missing = alice_client.post(url, {"implemented_by": "alice"}, headers=HTMX)
    assert missing.status_code == 422
    assert "Give the commit SHA or a link" in missing.content.decode()
    ok = alice_client.post(url, {"commit": "ABC1234", "implemented_by": "alice"}, headers=HTMX)
    assert ok.status_code == 200
    item.refresh_from_db()
    assert (item.status, item.commit) == ("done", "abc1234")
    conflict = alice_client.post(url, {"commit": "def5678", "implemented_by": "bob"}, headers=HTMX)
    assert conflict.status_code == 409
    assert "already done" in conflict.content.decode()


def test_publishing_from_the_status_bar_notes_the_incident(
    alice_client: Client, alice: User
) -> None:
    alice.user_permissions.add(Permission.objects.get(codename="publish_postmortem"))
    pm = postmortem()
    url = f"/postmortems/{pm.pk}/status"
    response = alice_client.post(url, {"status": "published"}, headers=HTMX)
    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith('<div id="pm-status"')
    pm.refresh_from_db()
    assert pm.status == PostMortemStatus.PUBLISHED
    assert pm.published_at is not None
    note = pm.incident.timeline.filter(kind=EventKind.NOTE).get()
    assert f"/postmortems/{pm.pk}" in note.message
    again = alice_client.post(url, {"status": "published"}, headers=HTMX)
    assert again.status_code == 409
    assert "cannot become published" in again.content.decode()
    retract = alice_client.post(url, {"status": "in_review"}, follow=True)
    assert retract.status_code == 200
    pm.refresh_from_db()
    assert (pm.status, pm.published_at) == ("in_review", None)
    assert alice_client.post(url, {"status": "gone"}, headers=HTMX).status_code == 422


def test_the_sections_to_write_start_empty_with_placeholders(alice_client: Client) -> None:
    pm = postmortem()
    for name, field, hint in [
        ("summary", "summary-text", "What happened, in two or three sentences."),
        ("impact", "impact-text", "Who was affected and how"),
        ("root-cause", "root-cause-steps", "What failed first?"),
        ("lessons", "lessons-text", "What went well: …"),
    ]:
        form = alice_client.get(f"/postmortems/{pm.pk}/sections/{name}?edit=1", headers=HTMX)
        textarea = form.content.decode().split(f'name="{field}"', 1)[1].split("</textarea>")[0]
        assert f'placeholder="{hint}' in textarea, name
        assert textarea.endswith(">\n"), f"{name} is not empty: {textarea!r}"  # Django's newline


def test_placeholder_text_an_older_draft_stored_becomes_a_placeholder(
    alice_client: Client,
) -> None:
    pm = postmortem()
    PostMortem.objects.filter(pk=pm.pk).update(
        summary="_What happened, in two or three sentences._",
        root_cause_chain=["The disk filled up", "_Why did that failure reach users?_"],
        lessons="We rolled back fast.\n\n_What went wrong:_ …",
    )
    url = f"/postmortems/{pm.pk}/sections"
    summary = alice_client.get(f"{url}/summary?edit=1", headers=HTMX).content.decode()
    assert 'placeholder="What happened' in summary
    assert "_What happened" not in summary
    chain = alice_client.get(f"{url}/root-cause?edit=1", headers=HTMX).content.decode()
    assert "The disk filled up</textarea>" in chain
    assert "_Why did" not in chain
    lessons = alice_client.get(f"{url}/lessons?edit=1", headers=HTMX).content.decode()
    assert "We rolled back fast.</textarea>" in lessons


def test_publishing_warns_about_unwritten_sections_and_asks_to_confirm(
    alice_client: Client, alice: User
) -> None:
    alice.user_permissions.add(Permission.objects.get(codename="publish_postmortem"))
    pm = postmortem()
    everything = "Summary, Impact, Root cause chain, Lessons learned"
    page = alice_client.get(f"/postmortems/{pm.pk}").content.decode()
    assert f"Not written yet: {everything}." in page
    assert f'hx-confirm="Not written yet: {everything}. Publish anyway?' in page

    # Saving a section updates the warning in the status bar (out of band).
    url = f"/postmortems/{pm.pk}/sections"
    saved = alice_client.post(f"{url}/summary", {"summary-text": "NFS hung."}, headers=HTMX)
    bar = saved.content.decode().split('<div id="pm-status"', 1)[1]
    assert bar.startswith(' class="pm-status" hx-swap-oob="true">')
    assert "Not written yet: Impact, Root cause chain, Lessons learned." in bar

    # Placeholder text left from an older draft counts as unwritten.
    alice_client.post(f"{url}/impact", {"impact-text": "Checkout down."}, headers=HTMX)
    alice_client.post(f"{url}/root-cause", {"root-cause-steps": "Disk full"}, headers=HTMX)
    PostMortem.objects.filter(pk=pm.pk).update(lessons="_What went well:_ …")
    assert (
        "Not written yet: Lessons learned."
        in alice_client.get(f"/postmortems/{pm.pk}").content.decode()
    )

    saved = alice_client.post(f"{url}/lessons", {"lessons-text": "Alert on disks."}, headers=HTMX)
    assert "Not written yet" not in saved.content.decode()
    page = alice_client.get(f"/postmortems/{pm.pk}").content.decode()
    assert "Not written yet" not in page
    assert "hx-confirm" not in page


def test_the_markdown_download_is_the_exported_document(alice_client: Client) -> None:
    pm = postmortem()
    response = alice_client.get(f"/postmortems/{pm.pk}.md")
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response.content.decode().startswith(f"# {pm.title}")
    assert alice_client.get("/postmortems/999999.md").status_code == 404


def test_missing_post_mortems_and_items_are_404(alice_client: Client) -> None:
    pm = postmortem()
    other = action_item(postmortem())
    assert alice_client.get("/postmortems/999999").status_code == 404
    assert alice_client.get(f"/postmortems/{pm.pk}/actions/{other.pk}").status_code == 404
    assert alice_client.post("/postmortems/999999/actions", {"action": "x"}).status_code == 404
    assert alice_client.get(f"/postmortems/{pm.pk}/sections/owner", headers=HTMX).status_code == 404
    assert alice_client.post(f"/postmortems/{pm.pk}/sections/title", {}).status_code == 404


def test_without_javascript_a_row_link_goes_back_to_the_page(alice_client: Client) -> None:
    pm = postmortem()
    item = action_item(pm)
    response = alice_client.get(f"/postmortems/{pm.pk}/actions/{item.pk}?edit=1")
    assert response["Location"] == f"/postmortems/{pm.pk}#item-{item.pk}"


def test_editing_needs_a_csrf_token(alice: User) -> None:
    pm = postmortem()
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(f"/postmortems/{pm.pk}/sections/summary", {"summary-text": "x"})
    assert response.status_code == 403
    add = client.post(f"/postmortems/{pm.pk}/actions", {"action": "x", "type": "Alert"})
    assert add.status_code == 403
