"""The incident page's public-title form: what the public status page calls
an incident is written by a responder, never taken from monitoring."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from incidents import services
from incidents.forms import PublicTitleForm
from incidents.views import _detail_context, _get_incident
from triage.http import HtmxHttpRequest


@login_required
@require_POST
def public_title(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """POST /incidents/{id}/public-title: set (or clear) the status page's title."""
    incident = _get_incident(pk)
    form = PublicTitleForm(request.POST)
    if form.is_valid():
        services.set_public_title(
            incident, actor=request.user, title=form.cleaned_data["public_title"]
        )
        status = 200
    else:
        status = 422
    if request.htmx:
        context = _detail_context(_get_incident(pk), public_title_form=form)
        return render(request, "incidents/detail.html#incident-body", context, status=status)
    if status != 200:
        messages.error(request, "A public title has at most 200 characters.")
    return redirect(incident)
