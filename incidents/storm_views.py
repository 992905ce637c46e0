"""The incident page's "Split out" action: a responder takes one alert out of
an alert storm into an incident of its own (incidents.storms)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from incidents import services
from incidents.models import StormAlert
from triage.errors import DomainError
from triage.http import HtmxHttpRequest


@login_required
@require_POST
def split_out(request: HtmxHttpRequest, pk: int, item_id: int) -> HttpResponse:
    """POST /incidents/{storm}/storm-alerts/{alert}/split: the new incident's
    page, or the storm's with the reason it cannot be split (already
    resolved or split out)."""
    alert = StormAlert.objects.select_related("storm__service").filter(pk=item_id, storm=pk).first()
    if alert is None:
        raise Http404(f"No alert {item_id} in storm #{pk}.")
    try:
        incident = services.split_storm_alert(alert, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.detail)
        return redirect(alert.storm)
    messages.success(request, f"Split out of storm #{pk}: {alert.name}.")
    return redirect(incident)
