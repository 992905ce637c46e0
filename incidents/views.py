"""Responder-facing pages and the incident endpoints. Views stay thin:
access → form → service → full page, partial, redirect or JSON."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpResponse, HttpResponseNotModified, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event
from django_redis import get_redis_connection
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

from accounts.http import api_or_login
from accounts.models import TokenScope
from incidents import hooks, rowcache, selectors, services, storms
from incidents.forms import (
    STATUS_FILTER_CHOICES,
    FilterForm,
    IncidentForm,
    NoteForm,
    PublicTitleForm,
)
from incidents.models import Incident, Severity
from incidents.serializers import event_json, incident_json, storm_alerts_json
from triage import readmodel
from triage.errors import DomainError
from triage.http import BadRequest, HtmxHttpRequest, field_errors, json_body, problem, wants_json
from triage.numbers import ascii_int

logger = logging.getLogger(__name__)

PAGE_SIZE = 25  # what PagerDuty shows per page; the most severe come first
CHANGED = "incidents-changed"  # htmx event: refresh whatever lists incidents
SEVERITY_CHOICES = [(value, f"{label} · {value}") for value, label in Severity.choices]


def _filters(request: HtmxHttpRequest) -> tuple[selectors.IncidentFilter, list[str]]:
    """The filters asked for, and what was wrong with any that were dropped:
    the others still apply (a stale bookmark with a deleted service still
    shows incidents) and the page names what it ignored."""
    form = FilterForm(request.GET or None)
    if not form.is_bound:
        return selectors.IncidentFilter(), []
    form.is_valid()  # an invalid field is left out of cleaned_data
    data = form.cleaned_data
    filters = selectors.IncidentFilter(
        service=data.get("service"),
        severity=data.get("severity", ""),
        status=data.get("status", ""),
        q=data.get("q", ""),
        opened_from=data.get("from"),
        opened_to=data.get("to"),
    )
    problems = [
        f"{form.fields[name].label or name.capitalize()} ignored: {'; '.join(map(str, errors))}."
        for name, errors in form.errors.items()
    ]
    return filters, problems


def _new_incident_form(data: Any = None) -> IncidentForm:
    # A fresh idempotency key per rendered form: a double click or a resubmit
    # after a network error cannot open the incident twice.
    # Its own ids: it shares the dashboard with the filter form.
    return IncidentForm(data, initial={"idempotency_key": uuid.uuid4().hex}, auto_id="new-%s")


@dataclass(frozen=True)
class _Listing:
    """What the list, its counts and its pages show, as cached: data, not
    markup, so times relative to now ("in 4 min") are rendered per request."""

    counts: dict[str, int]
    count: int  # incidents matching the filters
    number: int  # the page shown
    rows: list[selectors.DashboardRow]
    # When a maintenance window of a listed service starts or ends, and
    # "held by a maintenance window" with it: the entry is not used after.
    fresh_until: datetime | None
    # What the list was read from: the read model's version and this read.
    stamp: str
    filters: selectors.IncidentFilter  # the filters applied
    problems: tuple[str, ...]  # filters asked for and ignored, and why
    more: bool = False  # more than ``count`` match (a long history)


def _read_listing(
    request: HtmxHttpRequest, number: int, stamp: str, counts: dict[str, int] | None = None
) -> _Listing:
    """The listing from PostgreSQL (and paging's live state in Redis);
    ``counts``: the open incidents per severity, when already known."""
    filters, problems = _filters(request)
    if counts is None:
        counts = selectors.open_counts_by_severity()
    paginator = Paginator(selectors.dashboard_incidents(filters), PAGE_SIZE)
    if filters == selectors.IncidentFilter():
        # Unfiltered, the per-severity counts already add up to the total:
        # no second pass over every open incident just to count them.
        paginator.count = sum(counts.values())
    more = False
    if filters.history:
        paginator.count, more = selectors.history_count(filters)
    page = paginator.get_page(number)
    rows = [selectors.dashboard_row(values) for values in page.object_list]
    # Who is paged and what happens next, from paging (incidents.hooks).
    fresh_until = hooks.pages.dashboard_rows(rows, now=timezone.now())
    return _Listing(
        counts,
        paginator.count,
        page.number,
        rows,
        fresh_until,
        stamp,
        filters,
        tuple(problems),
        more=more,
    )


def _listing(request: HtmxHttpRequest, number: int) -> _Listing:
    """The listing, from the cache while nothing open changed (triage.readmodel).

    Keyed by (version, filters as asked, the time zone their dates are in,
    page): a change bumps the version, so no entry is ever invalidated, only
    left behind to expire. The filters are only checked (a service looked
    up) when the list is read. Without Redis, straight from PostgreSQL (and
    no stamp: no 304s).
    """
    now = timezone.now()
    asked = _asked(request, number)
    try:
        version = readmodel.version()
        key = "dashboard:" + _digest(version, asked)
        # The counts are the same for every filter and page: one entry per
        # version, read in the listing's round trip.
        counts_key = f"dashboard:counts:{version}"
        found = cache.get_many([key, counts_key])
    except (RedisError, OSError, ConnectionInterrupted):
        logger.warning("redis unavailable; the dashboard is read from PostgreSQL")
        return _read_listing(request, number, stamp="")
    cached: _Listing | None = found.get(key)
    if cached is not None and (cached.fresh_until is None or now < cached.fresh_until):
        return cached
    counts: dict[str, int] | None = found.get(counts_key)
    listing = _read_listing(request, number, f"{version}:{now.timestamp()}", counts)
    try:
        cache.set_many({key: listing, counts_key: listing.counts}, readmodel.ENTRY_TTL)
        _store_stamp(asked, version, listing)
    except (RedisError, OSError, ConnectionInterrupted):
        logger.warning("redis unavailable; the dashboard was not cached")
    return listing


def _asked(request: HtmxHttpRequest, number: int) -> tuple[list[str], int]:
    """The filters as asked (not yet checked), the time zone their dates are
    in, and the page: what a cached read is for."""
    asked = [request.GET.get(name, "") for name in FilterForm.base_fields]
    return [*asked, timezone.get_current_timezone_name()], number


def _stamp_key(asked: tuple[list[str], int]) -> str:
    return "triage:dashboard:stamp:" + _digest(asked)


def _store_stamp(asked: tuple[list[str], int], version: int, listing: _Listing) -> None:
    """Beside the cached listing, what its ETag is made of, small enough to
    answer an unchanged poll without reading the listing (``_unchanged_etag``)."""
    until = listing.fresh_until.timestamp() if listing.fresh_until else ""
    get_redis_connection("default").set(
        _stamp_key(asked), f"{version}|{listing.stamp}|{until}", ex=readmodel.ENTRY_TTL
    )


def _unchanged_etag(request: HtmxHttpRequest, number: int) -> str:
    """The ETag the list's refresh would carry, when the last listing read
    for these filters and page was read at the current version and is still
    fresh; else "" (then the listing itself is read, as for any request).

    Why this cannot answer 304 for a list that changed: the stamp entry
    names the version it was read at, and a change bumps the version after
    its commit, so the entry no longer matches. Two reads of one version
    (an entry that expired and was read again) may leave the stamp of one
    beside the listing of the other; both were read at that version, so
    both are what it shows, and an ETag of the other misses here and is
    answered from the listing.
    """
    try:
        version, entry = readmodel.version_and(_stamp_key(_asked(request, number)))
    except (RedisError, OSError):
        return ""
    if entry is None:
        return ""
    read_at, stamp, until = entry.decode().split("|")
    if int(read_at) != version or (until and timezone.now().timestamp() >= float(until)):
        return ""
    return _etag(request, stamp)


def _etag(request: HtmxHttpRequest, stamp: str) -> str:
    # The refresh shows the list (the version read and when) as this user
    # asked for it (the path holds the filters and page), with its times in
    # their zone.
    user = request.user
    zone = timezone.get_current_timezone_name()
    return f'"{_digest(stamp, user.pk, user.get_username(), zone, request.get_full_path())}"'


def _digest(*parts: object) -> str:
    # Filters carry free text (the search): hashed into a key of fixed length.
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _page_number(request: HtmxHttpRequest) -> int:
    return max(1, ascii_int(request.GET.get("page", "")) or 1)


@login_required
@require_GET
def dashboard(request: HtmxHttpRequest) -> HttpResponse:
    number = _page_number(request)
    refresh = bool(request.htmx and request.htmx.target == "incident-list")
    known = request.headers.get("If-None-Match", "") if refresh else ""
    if known and (etag := _unchanged_etag(request, number)) and etag in known:
        # An unchanged poll: two small reads from Redis, no listing.
        return _revalidated(HttpResponseNotModified(), etag)
    listing = _listing(request, number)
    etag = ""
    if refresh and listing.stamp:
        etag = _etag(request, listing.stamp)
        if etag in known:
            return _revalidated(HttpResponseNotModified(), etag)
    paginator: Paginator[selectors.DashboardRow] = Paginator(listing.rows, PAGE_SIZE)
    paginator.count = listing.count
    page = Page(listing.rows, listing.number, paginator)
    # One reverse() for the page instead of two per row.
    incident_url = reverse("incident-detail", args=[0]).removesuffix("0")
    context = {
        "page": page,
        # Each row's markup, rendered once per what it shows (incidents.rowcache).
        "rows": rowcache.render_rows(listing.rows, incident_url),
        "counts": [(Severity(value), n) for value, n in listing.counts.items()],
        "total_open": sum(listing.counts.values()),
        "query": _query_without_page(request),
        "incident_url": incident_url,
        "filters": listing.filters,
        "filter_problems": listing.problems,
        "more": listing.more,
    }
    if refresh:
        response = render(request, "incidents/dashboard.html#refresh", {**context, "refresh": True})
        return _revalidated(response, etag) if etag else response
    filters = listing.filters
    context |= {
        "selected_service": filters.service.slug if filters.service else "",
        # Read again only when a service changes (triage.readmodel).
        "services": readmodel.settings_cached("service-choices", selectors.service_choices),
        "severity_choices": SEVERITY_CHOICES,
        "status_choices": STATUS_FILTER_CHOICES[1:],
    }
    response = render(request, "incidents/dashboard.html", context)
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


def _revalidated(response: HttpResponse, etag: str) -> HttpResponse:
    """A poll the browser keeps and asks about again with If-None-Match
    (htmx sees the kept copy; a 304 costs no rendering)."""
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    patch_vary_headers(response, ("HX-Request", "HX-Target", "Cookie"))
    return response


def _query_without_page(request: HtmxHttpRequest) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


def _create_from_request(request: HtmxHttpRequest) -> tuple[IncidentForm, dict[str, Any]]:
    if request.content_type == "application/json":
        data = json_body(request)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        data = request.POST.dict()
    else:
        raise BadRequest(
            415,
            "Unsupported media type",
            "Send application/json (API) or a form (application/x-www-form-urlencoded).",
        )
    header_key = request.headers.get("Idempotency-Key")
    if header_key:
        data["idempotency_key"] = header_key
    return IncidentForm(data, auto_id="new-%s"), data


@api_or_login(TokenScope.WRITE)
@require_POST
def incident_create(request: HtmxHttpRequest) -> HttpResponse:
    """POST /incidents: open an incident (idempotent with an Idempotency-Key)."""
    api = wants_json(request)
    try:
        form, _ = _create_from_request(request)
    except BadRequest as exc:
        return exc.response()
    if not form.is_valid():
        if api:
            return problem(422, "Invalid incident", "Some fields are invalid.", field_errors(form))
        return _render_new_form(request, form, status=422)
    data = form.cleaned_data
    try:
        opened = services.open_incident(
            service=data["service"],
            title=data["title"],
            severity=data["severity"],
            details=data["details"],
            dedup_key=data["dedup_key"],
            idempotency_key=data["idempotency_key"] or None,
            source="api" if api else "ui",
            actor=request.user,
        )
    except DomainError as exc:
        if api:
            return problem(exc.status, exc.title, exc.detail)
        form.add_error(None, exc.detail)
        return _render_new_form(request, form, status=exc.status)
    incident = opened.incident
    if api:
        body = {**incident_json(incident), "deduplicated": opened.deduplicated}
        response = JsonResponse(body, status=201 if opened.created else 200)
        response["Location"] = incident.get_absolute_url()
        return response
    if request.htmx:
        fresh = render(
            request,
            "incidents/_new_form_fields.html",
            {"new_form": _new_incident_form(), "created": incident},
        )
        return trigger_client_event(fresh, CHANGED)
    return redirect(incident, permanent=False)


def _render_new_form(request: HtmxHttpRequest, form: IncidentForm, *, status: int) -> HttpResponse:
    template = "incidents/_new_form_fields.html" if request.htmx else "incidents/new.html"
    return render(request, template, {"new_form": form}, status=status)


@login_required
@require_GET
def incident_new(request: HtmxHttpRequest) -> HttpResponse:
    # htmx asks for it from the dashboard, which keeps the person there; the
    # page on its own submits plainly and so lands on the new incident.
    context = {"new_form": _new_incident_form(), "inline": bool(request.htmx)}
    return render(request, "incidents/new.html", context)


def _get_incident(pk: int) -> Incident:
    try:
        return selectors.incident_detail(pk)
    except Incident.DoesNotExist:
        raise Http404(f"No incident #{pk}.") from None


def _detail_context(incident: Incident, **extra: Any) -> dict[str, Any]:
    return {
        "incident": incident,
        **hooks.pages.incident_page(incident, now=timezone.now()),
        "timeline": selectors.timeline(incident),
        "note_form": NoteForm(),
        "public_title_form": PublicTitleForm(initial={"public_title": incident.public_title}),
        "severity": Severity(incident.severity),
        **_storm_context(incident),
        **extra,
    }


def _storm_context(incident: Incident) -> dict[str, Any]:
    if not incident.is_storm:
        return {}
    return {"storm": storms.summary(incident), "storm_alerts": storms.alerts(incident)}


@api_or_login(TokenScope.READ)
@require_GET
def incident_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    if wants_json(request):
        try:
            incident = selectors.incident_detail(pk)
        except Incident.DoesNotExist:
            return problem(404, "Not found", f"No incident #{pk}.")
        events = [event_json(event) for event in selectors.timeline(incident)]
        storm_alerts = storm_alerts_json(incident)
        return JsonResponse(
            {**incident_json(incident), "timeline": events, "storm_alerts": storm_alerts}
        )
    incident = _get_incident(pk)
    return render(request, "incidents/detail.html", _detail_context(incident))


Action = Callable[[Incident, HtmxHttpRequest], Incident]


def _note(incident: Incident, request: HtmxHttpRequest) -> Incident:
    data = json_body(request) if request.content_type == "application/json" else request.POST
    form = NoteForm(data)
    if not form.is_valid():
        raise _InvalidNote(form)
    services.add_note(incident, actor=request.user, text=form.cleaned_data["text"])
    return incident


class _InvalidNote(Exception):
    def __init__(self, form: NoteForm) -> None:
        super().__init__("invalid note")
        self.form = form


ACTIONS: dict[str, Action] = {
    "acknowledge": lambda incident, request: services.acknowledge_incident(
        incident, actor=request.user
    ),
    "resolve": lambda incident, request: services.resolve_incident(incident, actor=request.user),
    "reopen": lambda incident, request: services.reopen_incident(incident, actor=request.user),
    "escalate": lambda incident, request: services.escalate_incident(incident, actor=request.user),
    "notes": _note,
}


@api_or_login(TokenScope.WRITE)
@require_http_methods(["POST"])
def incident_action(request: HtmxHttpRequest, pk: int, action: str) -> HttpResponse:
    """POST /incidents/{id}/{acknowledge,resolve,reopen,escalate,notes}."""
    api = wants_json(request)
    try:
        incident = selectors.incident_detail(pk)
    except Incident.DoesNotExist:
        raise Http404(f"No incident #{pk}.") from None
    status, error, note_form = 200, "", NoteForm()
    try:
        ACTIONS[action](incident, request)
    except BadRequest as exc:
        return exc.response()
    except _InvalidNote as exc:
        if api:
            return problem(
                422, "Invalid note", "The note is empty or too long.", field_errors(exc.form)
            )
        status, note_form = 422, exc.form
    except DomainError as exc:
        if api:
            return problem(exc.status, exc.title, exc.detail)
        status, error = exc.status, exc.detail
    incident = selectors.incident_detail(pk)
    if api:
        return JsonResponse(incident_json(incident))
    if request.htmx:
        context = _detail_context(incident, error=error, note_form=note_form)
        response = render(request, "incidents/detail.html#incident-body", context, status=status)
        return trigger_client_event(response, CHANGED)
    if error or note_form.errors:
        messages.error(request, error or "A note needs some text (at most 10,000 characters).")
    return redirect(incident)
