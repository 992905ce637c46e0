"""The post-mortem editor and its JSON endpoints. Views stay thin:
access → form → service → full page, named partial, redirect or JSON."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from accounts.http import api_or_login
from accounts.models import TokenScope
from incidents import selectors as incident_selectors
from incidents.models import Incident, Severity
from postmortems import document, sections, selectors, services
from postmortems.forms import ActionItemForm, PostMortemStatusForm
from postmortems.models import TRANSITIONS, ActionItem, PostMortem, PostMortemStatus
from postmortems.rendering import markdown_html
from triage import ratelimit
from triage.errors import DomainError
from triage.http import HtmxHttpRequest, problem, wants_json

CHANGED = "postmortem-changed"  # htmx event: refresh what shows the follow-ups


def get_postmortem(pk: int) -> PostMortem:
    try:
        return selectors.postmortem_detail(pk)
    except PostMortem.DoesNotExist:
        raise Http404(f"No post-mortem #{pk}.") from None


def postmortem_json(post_mortem: PostMortem) -> dict[str, Any]:
    return {
        "id": post_mortem.pk,
        "incident": post_mortem.incident_id,
        "title": post_mortem.title,
        "slug": post_mortem.slug,
        "status": post_mortem.status,
        "url": post_mortem.get_absolute_url(),
        "todos_url": f"{post_mortem.get_absolute_url()}/todos",
    }


def followup_html(items: list[ActionItem]) -> str:
    table = "\n".join([document.FOLLOWUP_HEADER, *document.followup_rows(items)])
    return markdown_html(table)


def status_context(post_mortem: PostMortem, user: Any) -> dict[str, Any]:
    """What the status bar shows: the next steps, and the sections still
    unwritten (publishing warns about them and asks to confirm)."""
    return {
        "pm": post_mortem,
        "next_statuses": [
            PostMortemStatus(s)
            for s in PostMortemStatus.values
            if s in TRANSITIONS[post_mortem.status]
        ],
        "may_publish": services.may_publish(user),
        "unwritten": sections.unwritten(post_mortem),
    }


def editor_context(
    post_mortem: PostMortem, *, editing: str = "", user: Any = None, **extra: Any
) -> dict[str, Any]:
    items = selectors.action_items(post_mortem)
    return {
        **status_context(post_mortem, user),
        "severity": Severity(post_mortem.severity),
        "duration": document.format_duration(post_mortem.duration),
        "span": document.format_span(post_mortem.started_at, post_mortem.ended_at),
        "sections": sections.all_sections(post_mortem, editing),
        "items": items,
        "item_form": ActionItemForm(auto_id="new-item-%s"),
        "followups": followup_html(items),
        **extra,
    }


@api_or_login(TokenScope.WRITE)
@require_POST
def draft(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """POST /incidents/{id}/postmortem: draft it (or find the existing one)."""
    api = wants_json(request)
    try:
        incident = incident_selectors.incident_detail(pk)
    except Incident.DoesNotExist:
        raise Http404(f"No incident #{pk}.") from None
    try:
        drafted = services.draft_postmortem(incident, actor=request.user)
    except DomainError as exc:
        if api:
            return problem(exc.status, exc.title, exc.detail)
        messages.error(request, exc.detail)
        return redirect(incident)
    if api:
        status = 201 if drafted.created else 200
        return JsonResponse(postmortem_json(drafted.post_mortem), status=status)
    if drafted.created:
        messages.success(request, "Post-mortem drafted from the incident. Fill in the blanks.")
    return redirect(drafted.post_mortem)


@require_GET
@ratelimit.public_page
def detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The editor for responders; the published document for everyone else."""
    if not request.user.is_authenticated:
        post_mortem = selectors.postmortem_or_none(pk)
        if post_mortem is None or not post_mortem.is_published:
            return redirect_to_login(request.get_full_path())
        return public_page(request, post_mortem)
    post_mortem = get_postmortem(pk)
    editing = request.GET.get("edit", "")
    if editing not in sections.HEADINGS:
        editing = ""
    return render(
        request,
        "postmortems/detail.html",
        editor_context(post_mortem, editing=editing, user=request.user),
    )


def public_body(post_mortem: PostMortem) -> SafeString:
    """The published page's content: only what is written for publication."""
    items = selectors.action_items(post_mortem)
    return markdown_html(document.postmortem_markdown(post_mortem, items, public=True))


def public_page(
    request: HtmxHttpRequest, post_mortem: PostMortem, *, preview: bool = False
) -> HttpResponse:
    context = {"pm": post_mortem, "body": public_body(post_mortem), "preview": preview}
    return render(request, "postmortems/public.html", context)


@login_required
@require_GET
def preview(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """GET /postmortems/{id}/preview: the public page, exactly, before publishing."""
    return public_page(request, get_postmortem(pk), preview=True)


@login_required
@require_http_methods(["GET", "POST"])
def section(request: HtmxHttpRequest, pk: int, name: str) -> HttpResponse:
    """GET: a section (``?edit=1``: its form); POST: save it."""
    if name not in sections.HEADINGS:
        raise Http404(f"No section {name!r}.")
    post_mortem = get_postmortem(pk)
    if request.method == "GET":
        if not request.htmx:
            return redirect(f"{post_mortem.get_absolute_url()}?edit={name}#section-{name}")
        form = sections.form_for(post_mortem, name) if request.GET.get("edit") else None
        return _render_section(request, post_mortem, name, form)
    form = sections.form_for(post_mortem, name, request.POST)
    if not form.is_valid():
        if request.htmx:
            return _render_section(request, post_mortem, name, form, status=422)
        context = editor_context(post_mortem, user=request.user)
        context["sections"] = [
            sections.section(post_mortem, s.name, form) if s.name == name else s
            for s in context["sections"]
        ]
        return render(request, "postmortems/detail.html", context, status=422)
    post_mortem = services.update_postmortem(
        post_mortem, actor=request.user, **sections.changes_from(name, form.cleaned_data)
    )
    post_mortem = get_postmortem(pk)
    if request.htmx:
        response = _render_section(request, post_mortem, name, None)
        # The status bar too (out of band): what it says is still unwritten.
        bar = render(
            request,
            "postmortems/detail.html#status-bar",
            {**status_context(post_mortem, request.user), "oob": True},
        )
        response.content += bar.content
        return response
    return redirect(f"{post_mortem.get_absolute_url()}#section-{name}")


def _render_section(
    request: HtmxHttpRequest,
    post_mortem: PostMortem,
    name: str,
    form: Any,
    *,
    status: int = 200,
) -> HttpResponse:
    context = {
        "pm": post_mortem,
        "severity": Severity(post_mortem.severity),
        "duration": document.format_duration(post_mortem.duration),
        "span": document.format_span(post_mortem.started_at, post_mortem.ended_at),
        "section": sections.section(post_mortem, name, form),
    }
    return render(request, "postmortems/detail.html#section", context, status=status)


@login_required
@require_POST
def change_status(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    post_mortem = get_postmortem(pk)
    form = PostMortemStatusForm(request.POST)
    error = ""
    if not form.is_valid():
        error, status = "Unknown status.", 422
    else:
        try:
            post_mortem = services.change_postmortem_status(
                post_mortem, form.cleaned_data["status"], actor=request.user
            )
            status = 200
        except DomainError as exc:
            error, status = exc.detail, exc.status
    if not request.htmx:
        if error:  # the page again, with the reason and the status code
            context = editor_context(get_postmortem(pk), user=request.user, status_error=error)
            return render(request, "postmortems/detail.html", context, status=status)
        return redirect(post_mortem)
    context = editor_context(get_postmortem(pk), user=request.user, status_error=error)
    response = render(request, "postmortems/detail.html#status-bar", context, status=status)
    return trigger_client_event(response, CHANGED)


@require_GET
@ratelimit.public_page
def markdown(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The post-mortem as the Markdown file ``export_postmortems`` writes."""
    post_mortem = selectors.postmortem_or_none(pk)
    visible = post_mortem is not None and (
        request.user.is_authenticated or post_mortem.is_published
    )
    if post_mortem is None or not visible:
        if request.user.is_authenticated:
            raise Http404(f"No post-mortem #{pk}.")
        return redirect_to_login(request.get_full_path())
    # Anonymous readers get the public document; responders the whole one.
    public = not request.user.is_authenticated
    items = selectors.action_items(post_mortem)
    text = document.postmortem_markdown(post_mortem, items, public=public)
    response = HttpResponse(text, content_type="text/markdown; charset=utf-8")
    filename = document.export_filename(post_mortem)
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


@api_or_login(TokenScope.READ)
@require_GET
def todos(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """GET /postmortems/{id}/todos: the pending follow-ups as TODO-parser JSON."""
    post_mortem = selectors.postmortem_or_none(pk)
    if post_mortem is None:  # a JSON-only endpoint: JSON for browsers too
        return problem(404, "Not found", f"No post-mortem #{pk}.")
    return JsonResponse(document.todo_json(post_mortem, selectors.action_items(post_mortem)))


@login_required
@require_GET
def followups(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The Follow-up Implementation table, refreshed after an item changes."""
    post_mortem = get_postmortem(pk)
    context = {"pm": post_mortem, "followups": followup_html(selectors.action_items(post_mortem))}
    return render(request, "postmortems/detail.html#followups", context)
