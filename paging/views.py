"""On-call page, iCal feeds, and a responder's own contact methods."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from icalendar import Calendar, Event

from accounts.tokens import authenticate_token
from paging import oncall, shift_selectors
from paging import shifts as shift_services
from paging.forms import ContactMethodForm, CoverForm, RuleForm, ShiftRangeForm
from paging.models import ContactMethod, NotificationRule, Schedule
from paging.selectors import unreachable, unreachable_everyone
from paging.tasks import send_test_notification

TIMELINE_DAYS = 14
ICAL_WEEKS = 8


@login_required
@require_GET
def oncall_page(request: HttpRequest) -> HttpResponse:
    return render(request, "paging/oncall.html", oncall_context(request.user))


def oncall_context(viewer: Any, **extra: Any) -> dict[str, Any]:
    """The on-call page: each schedule's now, next, shifts, pending cover
    requests and recent changes, and what ``viewer`` may change there."""
    now = timezone.now()
    rows = []
    people: dict[int, User] = {}
    schedules = list(Schedule.objects.order_by("name"))
    pending = shift_selectors.pending_on(schedules, now=now)
    changes = shift_selectors.recent_changes(schedules, now=now)
    for schedule in schedules:
        shifts = oncall.shifts(schedule, start=now, end=now + timedelta(days=TIMELINE_DAYS))
        on_call = oncall.who_is_on_call(schedule, at=now)
        upcoming = oncall.next_handoff(schedule, at=now)
        for person in [*on_call, *([upcoming.user] if upcoming else [])]:
            people[person.pk] = person
        team = shift_services.members(schedule)
        rows.append(
            {
                "schedule": schedule,
                "now": on_call,
                "next": upcoming,
                "shifts": shifts,
                "may_change": viewer.is_staff or team.filter(pk=viewer.pk).exists(),
                "cover_form": CoverForm(people=team.exclude(pk=viewer.pk)),
                "range_form": ShiftRangeForm(),
                "pending": pending.get(schedule.pk, []),
                "changes": changes.get(schedule.pk, [])[:5],
            }
        )
    # People on call now or next whom nothing verified can reach: say so
    # before an incident finds out.
    reasons = unreachable(people.values())
    warnings = [(people[pk], reason) for pk, reason in sorted(reasons.items())]
    return {"rows": rows, "days": TIMELINE_DAYS, "warnings": warnings, "now": now, **extra}


@login_required
@require_GET
def unreachable_page(request: HttpRequest) -> HttpResponse:
    """Staff: everyone triage cannot be sure to reach, why, and what pages them."""
    if not request.user.is_staff:
        raise PermissionDenied("Only staff can see who cannot be reached.")
    return render(request, "paging/unreachable.html", {"people": unreachable_everyone()})


def _calendar(name: str, shifts: list[tuple[str, oncall.Shift]]) -> HttpResponse:
    calendar = Calendar()
    calendar.add("prodid", "-//triage//on-call//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", name)
    stamp = timezone.now()
    for schedule_name, shift in shifts:
        event = Event()
        event.add("uid", f"{schedule_name}-{shift.user.pk}-{shift.start.timestamp():.0f}@triage")
        event.add("summary", f"On call: {schedule_name} ({shift.user.get_username()})")
        event.add("dtstart", shift.start)
        event.add("dtend", shift.end)
        event.add("dtstamp", stamp)
        calendar.add_component(event)
    response = HttpResponse(calendar.to_ical(), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'inline; filename="{name}.ics"'
    return response


def _feed_allowed(request: HttpRequest) -> bool:
    """Calendar apps cannot log in or send headers: a read token may come as ?token=."""
    raw = request.GET.get("token", "")
    token = authenticate_token(raw) if raw else None
    if token is not None:
        request.user = token.user
    return request.user.is_authenticated


def _window() -> tuple[datetime, datetime]:
    start = timezone.now() - timedelta(days=7)
    return start, start + timedelta(weeks=ICAL_WEEKS) + timedelta(days=7)


@require_GET
def schedule_ical(request: HttpRequest, slug: str) -> HttpResponse:
    if not _feed_allowed(request):
        return _ical_login_required(request)
    schedule = get_object_or_404(Schedule, slug=slug)
    start, end = _window()
    shifts = oncall.shifts(schedule, start=start, end=end)
    return _calendar(schedule.slug, [(schedule.name, shift) for shift in shifts])


@require_GET
def person_ical(request: HttpRequest, username: str) -> HttpResponse:
    if not _feed_allowed(request):
        return _ical_login_required(request)
    person = get_object_or_404(User, username=username)
    start, end = _window()
    mine = [
        (schedule.name, shift)
        for schedule in Schedule.objects.order_by("name")
        for shift in oncall.shifts(schedule, start=start, end=end)
        if shift.user == person
    ]
    return _calendar(f"oncall-{person.get_username()}", mine)


def _ical_login_required(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(
        "Log in, or add ?token=<a read API token> to this URL.\n",
        status=401,
        content_type="text/plain; charset=utf-8",
    )
    response["WWW-Authenticate"] = 'Bearer realm="triage"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
def notifications(request: HttpRequest) -> HttpResponse:
    """A responder's contact methods and rules."""
    method_form = ContactMethodForm(prefix="method")
    rule_form = RuleForm(prefix="rule", user=request.user)
    status = 200
    if request.method == "POST":
        if "method-url" in request.POST:
            method_form = ContactMethodForm(request.POST, prefix="method")
            if method_form.is_valid():
                method = method_form.save(commit=False)
                method.user = request.user  # type: ignore[assignment]
                method.position = ContactMethod.objects.filter(user=request.user.pk).count()
                method.save()
                messages.success(request, f"Added {method.name}.")
                return redirect("notifications")
        else:
            rule_form = RuleForm(request.POST, prefix="rule", user=request.user)
            if rule_form.is_valid():
                try:
                    NotificationRule.objects.create(**rule_form.cleaned_data)
                except IntegrityError:
                    messages.error(request, "That rule exists already.")
                return redirect("notifications")
        status = 422
    methods = ContactMethod.objects.filter(user=request.user.pk).prefetch_related("rules")
    user: User = request.user  # type: ignore[assignment]  # login_required
    context = {
        "methods": methods,
        "method_form": method_form,
        "rule_form": rule_form,
        "testing": TESTING,
        "unverified": unreachable([user]).get(user.pk, ""),
    }
    return render(request, "paging/notifications.html", context, status=status)


# While a test notification is on its way, its method's last result says so;
# the row polls until the worker writes the outcome. A test that has not
# finished after TEST_PATIENCE (no worker running) stops the polling.
TESTING = "sending test…"
TEST_PATIENCE = timedelta(seconds=60)


def _row(request: HttpRequest, method: ContactMethod) -> HttpResponse:
    testing = method.last_test_result == TESTING
    stale = testing and (
        method.last_test_at is None or method.last_test_at < timezone.now() - TEST_PATIENCE
    )
    context = {"method": method, "polling": testing and not stale, "stale": stale}
    return render(request, "paging/notifications.html#method-row", context)


@login_required
@require_POST
def test_notification(request: HttpRequest, pk: int) -> HttpResponse:
    method = get_object_or_404(ContactMethod, pk=pk, user=request.user.pk)
    ContactMethod.objects.filter(pk=method.pk).update(
        last_test_at=timezone.now(), last_test_result=TESTING
    )
    send_test_notification.delay(method.pk)
    if getattr(request, "htmx", False):
        method.refresh_from_db()
        return _row(request, method)
    messages.success(request, f"Test notification to {method.name} on its way.")
    return redirect("notifications")


@login_required
@require_GET
def notification_row(request: HttpRequest, pk: int) -> HttpResponse:
    """One contact method's row: what the test page polls until the test ends."""
    return _row(request, get_object_or_404(ContactMethod, pk=pk, user=request.user.pk))


@login_required
@require_POST
def delete_method(request: HttpRequest, pk: int) -> HttpResponse:
    method = get_object_or_404(ContactMethod, pk=pk, user=request.user.pk)
    method.delete()
    messages.success(request, f"Removed {method.name}.")
    return redirect("notifications")
