"""Action items of a post-mortem: add, edit, change status, record the
follow-up. The editor swaps single table rows; the API gets JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from accounts.http import api_or_login
from accounts.models import TokenScope
from postmortems import selectors, services
from postmortems.forms import ActionItemForm, ActionStatusForm, FollowupForm
from postmortems.models import ActionItem, PostMortem
from postmortems.views import CHANGED, editor_context, get_postmortem
from triage.errors import DomainError
from triage.http import BadRequest, HtmxHttpRequest, field_errors, json_body, problem, wants_json


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def item_json(item: ActionItem) -> dict[str, Any]:
    return {
        "id": item.pk,
        "priority": item.priority,
        "action": item.action,
        "type": item.type,
        "details": item.details,
        "status": item.status,
        "status_label": item.get_status_display(),
        "safe": item.safe,
        "owner": item.owner.get_username() if item.owner else None,
        "commit": item.commit,
        "link": item.link,
        "implemented_by": item.implemented_by,
        "done_at": _time(item.done_at),
    }


def _data(request: HtmxHttpRequest) -> Any:
    if request.content_type == "application/json":
        return json_body(request)
    return request.POST


def _get_item(post_mortem_id: int, item_id: int) -> ActionItem:
    try:
        return selectors.action_item(post_mortem_id, item_id)
    except ActionItem.DoesNotExist:
        raise Http404(f"No action item #{item_id} in post-mortem #{post_mortem_id}.") from None


def _row(
    request: HtmxHttpRequest,
    post_mortem: PostMortem,
    item: ActionItem,
    *,
    form: Any = None,
    followup_form: Any = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    editing = form is not None or followup_form is not None
    context = {
        "pm": post_mortem,
        "item": item,
        "form": form,
        "followup_form": followup_form,
        "error": error,
    }
    name = "action-row-form" if editing else "action-row"
    response = render(request, f"postmortems/detail.html#{name}", context, status=status)
    return trigger_client_event(response, CHANGED) if status == 200 else response


def _edit_form(item: ActionItem, data: Any = None) -> ActionItemForm:
    initial = {
        "priority": item.priority,
        "action": item.action,
        "type": item.type,
        "details": item.details,
        "owner": item.owner.get_username() if item.owner else None,
    }
    return ActionItemForm(data, initial=initial, auto_id=f"item-{item.pk}-%s")


def _followup_form(item: ActionItem, data: Any = None) -> FollowupForm:
    return FollowupForm(data, auto_id=f"followup-{item.pk}-%s")


@api_or_login(TokenScope.WRITE)
@require_POST
def add(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """POST /postmortems/{id}/actions: append an action item."""
    api = wants_json(request)
    try:
        post_mortem = selectors.postmortem_detail(pk)
    except PostMortem.DoesNotExist:
        raise Http404(f"No post-mortem #{pk}.") from None
    try:
        form = ActionItemForm(_data(request), auto_id="new-item-%s")
    except BadRequest as exc:
        return exc.response()
    if not form.is_valid():
        if api:
            return problem(
                422, "Invalid action item", "Some fields are invalid.", field_errors(form)
            )
        if request.htmx:
            context = editor_context(post_mortem, item_form=form)
            return render(request, "postmortems/detail.html#action-items", context, status=422)
        context = editor_context(post_mortem, item_form=form)
        return render(request, "postmortems/detail.html", context, status=422)
    item = services.add_action_item(post_mortem, actor=request.user, **form.cleaned_data)
    if api:
        return JsonResponse(item_json(item), status=201)
    if request.htmx:
        response = render(
            request, "postmortems/detail.html#action-items", editor_context(post_mortem)
        )
        return trigger_client_event(response, CHANGED)
    return redirect(f"{post_mortem.get_absolute_url()}#action-items")


@login_required
@require_http_methods(["GET", "POST"])
def edit(request: HtmxHttpRequest, pk: int, item_id: int) -> HttpResponse:
    """GET: the row (``?edit=1``: its form); POST: save the row's fields."""
    post_mortem = get_postmortem(pk)
    item = _get_item(pk, item_id)
    if request.method == "GET":
        if not request.htmx:
            # Rows are edited in place with htmx; without it, the admin edits items.
            return redirect(f"{post_mortem.get_absolute_url()}#item-{item.pk}")
        if request.GET.get("edit"):
            return _row(
                request,
                post_mortem,
                item,
                form=_edit_form(item),
                followup_form=_followup_form(item),
            )
        return _row(request, post_mortem, item)
    form = _edit_form(item, request.POST)
    if not form.is_valid():
        return _row(
            request, post_mortem, item, form=form, followup_form=_followup_form(item), status=422
        )
    item = services.update_action_item(item, actor=request.user, **form.cleaned_data)
    if not request.htmx:
        return redirect(f"{post_mortem.get_absolute_url()}#action-items")
    return _row(request, post_mortem, _get_item(pk, item_id))


@login_required
@require_POST
def change_status(request: HtmxHttpRequest, pk: int, item_id: int) -> HttpResponse:
    post_mortem = get_postmortem(pk)
    item = _get_item(pk, item_id)
    form = ActionStatusForm(request.POST)
    if not form.is_valid():
        error = " ".join(str(message) for message in form.errors.get("status", ["Unknown status."]))
        if not request.htmx:
            messages.error(request, error)
            return redirect(post_mortem)
        return _row(request, post_mortem, item, error=error, status=422)
    services.change_action_status(item, form.cleaned_data["status"], actor=request.user)
    if not request.htmx:
        return redirect(f"{post_mortem.get_absolute_url()}#action-items")
    return _row(request, post_mortem, _get_item(pk, item_id))


@api_or_login(TokenScope.WRITE)
@require_POST
def done(request: HtmxHttpRequest, pk: int, item_id: int) -> HttpResponse:
    """POST /postmortems/{id}/actions/{item}/done: record the commit or link
    that implemented the item. Repeating the same call is harmless (200)."""
    api = wants_json(request)
    try:
        item = selectors.action_item(pk, item_id)
    except ActionItem.DoesNotExist:
        raise Http404(f"No action item #{item_id} in post-mortem #{pk}.") from None
    try:
        form = _followup_form(item, _data(request))
    except BadRequest as exc:
        return exc.response()
    if not form.is_valid():
        if api:
            return problem(
                422,
                "Invalid follow-up",
                "Give a commit or a link, and who did it.",
                field_errors(form),
            )
        post_mortem = get_postmortem(pk)
        return _row(
            request, post_mortem, item, form=_edit_form(item), followup_form=form, status=422
        )
    try:
        recorded = services.record_followup(item, actor=request.user, **form.cleaned_data)
    except DomainError as exc:
        if api:
            return problem(exc.status, exc.title, exc.detail)
        post_mortem = get_postmortem(pk)
        return _row(
            request,
            post_mortem,
            item,
            form=_edit_form(item),
            followup_form=form,
            error=exc.detail,
            status=exc.status,
        )
    if api:
        return JsonResponse(item_json(recorded.item), status=201 if recorded.created else 200)
    if not request.htmx:
        return redirect(f"{recorded.item.post_mortem.get_absolute_url()}#action-items")
    return _row(request, get_postmortem(pk), _get_item(pk, item_id))
