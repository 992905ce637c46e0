"""The on-call health page."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from incidents.models import Service
from insights.cache import TTL, cached_health_of, cached_html, page_context
from insights.forms import InsightsForm
from insights.selectors import DEFAULT_DAYS, RANGES


@login_required
@require_GET
def insights_page(request: HttpRequest) -> HttpResponse:
    form = InsightsForm(request.GET)
    context = {
        "form": form,
        "ranges": RANGES,
        "services": form.services,
        "selected_days": DEFAULT_DAYS,
        "selected_service": "",
        "ttl": TTL,
        "business_hours": settings.BUSINESS_HOURS,
    }
    if not form.is_valid():
        return render(request, "insights/insights.html", context, status=400)
    slug = form.cleaned_data["service"]
    try:
        figures = cached_health_of(form.cleaned_data["days"], slug)
    except Service.DoesNotExist:
        # Offered a moment ago, deleted since (the choices are cached until
        # a service changes, and its deletion bumps them after its commit).
        form.add_error("service", "Select a valid choice. That service no longer exists.")
        return render(request, "insights/insights.html", context, status=400)
    context |= {
        "figures": figures,
        "figures_html": cached_html(figures, page_context(figures)),
        "selected_days": figures.days,
        "selected_service": slug,
    }
    return render(request, "insights/insights.html", context)
