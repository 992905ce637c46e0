"""The on-call health page."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from insights.cache import TTL, cached_health, cached_html, page_context
from insights.forms import InsightsForm
from insights.selectors import DEFAULT_DAYS, RANGES


@login_required
@require_GET
def insights_page(request: HttpRequest) -> HttpResponse:
    form = InsightsForm(request.GET)
    context = {
        "form": form,
        "ranges": RANGES,
        "services": form.fields["service"].queryset,  # type: ignore[attr-defined]
        "selected_days": DEFAULT_DAYS,
        "selected_service": "",
        "ttl": TTL,
        "business_hours": settings.BUSINESS_HOURS,
    }
    if not form.is_valid():
        return render(request, "insights/insights.html", context, status=400)
    service = form.cleaned_data["service"]
    figures = cached_health(form.cleaned_data["days"], service)
    context |= {
        "figures": figures,
        "figures_html": cached_html(figures, page_context(figures)),
        "selected_days": figures.days,
        "selected_service": service.slug if service else "",
    }
    return render(request, "insights/insights.html", context)
