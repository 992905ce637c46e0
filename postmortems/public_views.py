"""The pages anyone may see without logging in: the report form, the status
page and the index of published post-mortems. Nothing else is public."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods

from postmortems import reports, selectors, status
from postmortems.forms import ReportForm
from triage import ratelimit
from triage.http import HtmxHttpRequest

STATUS_MAX_AGE = 30  # seconds a browser or proxy may reuse the status page
HONEYPOT = "website"  # a field people never see (hidden by CSS); bots fill it in


@require_GET
@ratelimit.public_page
def index(request: HtmxHttpRequest) -> HttpResponse:
    """GET /postmortems/: the published post-mortems (the same list as the export)."""
    entries = [(pm, pm.get_absolute_url()) for pm in selectors.published_postmortems()]
    return render(request, "postmortems/index.html", {"entries": entries})


@require_GET
@ratelimit.public_page
def status_page(request: HtmxHttpRequest) -> HttpResponse:
    context = {"page": status.status_page()}
    template = "postmortems/status.html#status-body" if request.htmx else "postmortems/status.html"
    response = render(request, template, context)
    response["Cache-Control"] = f"public, max-age={STATUS_MAX_AGE}"
    return response


def _render_report(
    request: HtmxHttpRequest, form: ReportForm, *, status: int = 200, **extra: Any
) -> HttpResponse:
    context = {
        "form": form,
        # A fresh stamp on every rendering, so a corrected report can be sent again.
        "stamp": reports.fill_token(),
        "default_service": reports.default_service(),
        "rate_limit": settings.REPORTS_RATE_LIMIT,
        "rate_window_minutes": max(1, settings.REPORTS_RATE_WINDOW // 60),
        **extra,
    }
    return render(request, "postmortems/report.html", context, status=status)


@require_http_methods(["GET", "POST"])
@ratelimit.public_page
def report(request: HtmxHttpRequest) -> HttpResponse:
    """GET/POST /report: anyone can report a problem; it opens an incident."""
    if request.method == "GET":
        return _render_report(request, ReportForm())
    verdict = ratelimit.hit(
        "report",
        ratelimit.client_ip(request),
        limit=settings.REPORTS_RATE_LIMIT,
        window=settings.REPORTS_RATE_WINDOW,
    )
    if not verdict.allowed:
        minutes = max(1, round(verdict.retry_after / 60))
        message = (
            f"Too many reports from your address: at most {verdict.limit} every "
            f"{max(1, settings.REPORTS_RATE_WINDOW // 60)} minutes. "
            f"Please try again in about {minutes} minute{'s' if minutes != 1 else ''}."
        )
        response = _render_report(request, ReportForm(request.POST), status=429, refused=message)
        response["Retry-After"] = str(verdict.retry_after)
        return response
    form = ReportForm(request.POST)
    if request.POST.get(HONEYPOT):
        form.add_error(None, "Your report could not be accepted. Leave the last field empty.")
        return _render_report(request, form, status=400)
    problem = reports.fill_token_problem(request.POST.get("stamp", ""))
    if problem is not None:
        form.add_error(None, problem)
        return _render_report(request, form, status=400)
    if not form.is_valid():
        return _render_report(request, form, status=422)
    data = form.cleaned_data
    service = data["service"] or reports.default_service()
    if service is None:
        form.add_error("service", "Choose the service that is broken.")
        return _render_report(request, form, status=422)
    incident = reports.report_problem(
        reports.Report(
            service=service,
            what=data["what"],
            started=data["started"],
            seeing=data["seeing"],
            expected=data["expected"],
            contact=data["contact"],
        )
    )
    return render(request, "postmortems/report_sent.html", {"reference": incident.pk})
