"""Responders' shift changes from /oncall, and "My shifts"."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from paging import shift_selectors
from paging import shifts as services
from paging.forms import CoverForm, ShiftRangeForm
from paging.models import CoverRequest, Schedule
from paging.views import TIMELINE_DAYS, oncall_context


def _refused(request: HttpRequest, message: str, status: int) -> HttpResponse:
    """The on-call page again, the reason on top, with a 4xx status."""
    context = oncall_context(request.user, error=message)
    return render(request, "paging/oncall.html", context, status=status)


def _valid(form: Any, schedule: Schedule) -> bool:
    # Times typed without an offset are the schedule's wall-clock times.
    with timezone.override(ZoneInfo(schedule.time_zone)):
        return bool(form.is_valid())


def _form_error(form: Any) -> str:
    return "; ".join(
        f"{'' if name == '__all__' else name + ': '}{error}"
        for name, errors in form.errors.items()
        for error in errors
    )


@login_required
@require_POST
def take_shift(request: HttpRequest, slug: str) -> HttpResponse:
    schedule = get_object_or_404(Schedule, slug=slug)
    form = ShiftRangeForm(request.POST)
    if not _valid(form, schedule):
        return _refused(request, _form_error(form), 400)
    try:
        override = services.take_shift(
            schedule,
            actor=request.user,  # type: ignore[arg-type]
            start=form.cleaned_data["start"],
            end=form.cleaned_data["end"],
            now=timezone.now(),
        )
    except services.ShiftRefused as refused:
        return _refused(request, str(refused), refused.status)
    when = services.span(schedule, override.start, override.end)
    messages.success(request, f"You are on call for {schedule.name} {when}.")
    return redirect("oncall")


@login_required
@require_POST
def ask_cover(request: HttpRequest, slug: str) -> HttpResponse:
    schedule = get_object_or_404(Schedule, slug=slug)
    form = CoverForm(request.POST, people=services.members(schedule))
    if not _valid(form, schedule):
        return _refused(request, _form_error(form), 400)
    try:
        cover = services.ask_cover(
            schedule,
            actor=request.user,  # type: ignore[arg-type]
            start=form.cleaned_data["start"],
            end=form.cleaned_data["end"],
            asked=form.cleaned_data["asked"],
            note=form.cleaned_data["note"],
            now=timezone.now(),
        )
    except services.ShiftRefused as refused:
        return _refused(request, str(refused), refused.status)
    whom = services.display_name(cover.asked) if cover.asked else "everyone on the rotation"
    messages.success(request, f"Asked {whom} to cover you. Nothing changes until someone accepts.")
    return redirect("my-shifts")


def _answer(verb: Callable[..., Any], done: str) -> Callable[[HttpRequest, int], HttpResponse]:
    @login_required
    @require_POST
    def view(request: HttpRequest, pk: int) -> HttpResponse:
        cover = get_object_or_404(CoverRequest.objects.select_related("schedule"), pk=pk)
        try:
            verb(cover, actor=request.user, now=timezone.now())
        except services.ShiftRefused as refused:
            messages.error(request, str(refused))
            return redirect_with_status(request, refused.status)
        messages.success(request, done)
        return redirect("my-shifts")

    return view


def redirect_with_status(request: HttpRequest, status: int) -> HttpResponse:
    """ "My shifts" with the message on top and a 4xx status (a refusal is not a success)."""
    response = my_shifts_page(request)
    response.status_code = status
    return response


accept_cover = _answer(services.accept_cover, "Thank you: you are on call for that time now.")
decline_cover = _answer(services.decline_cover, "Declined: the schedule is unchanged.")
cancel_cover = _answer(services.cancel_cover, "Request cancelled.")


@login_required
@require_GET
def my_shifts(request: HttpRequest) -> HttpResponse:
    return my_shifts_page(request)


def my_shifts_page(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    now = timezone.now()
    context = {
        "shifts": shift_selectors.my_shifts(
            user, start=now, end=now + timedelta(days=TIMELINE_DAYS)
        ),
        "days": TIMELINE_DAYS,
        "waiting": shift_selectors.waiting_for(user, now=now),
        "mine": shift_selectors.asked_by(user, now=now),
        "changes": shift_selectors.changes_for(user, now=now),
    }
    return render(request, "paging/my_shifts.html", context)
