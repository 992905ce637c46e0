"""A responder's own settings: API tokens (list, create shown once, revoke) and
their time zone (chosen on the settings page, or guessed by their browser)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts import timezones
from accounts.forms import TimeZoneForm, TokenForm
from accounts.models import ApiToken
from accounts.tokens import create_api_token, revoke_api_token


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    created = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            created = create_api_token(
                user=request.user,  # type: ignore[arg-type]
                name=form.cleaned_data["name"],
                scope=form.cleaned_data["scope"],
            )
            form = TokenForm()
        else:
            status = 422
    context = {
        "form": form,
        "created": created,
        "tokens": ApiToken.objects.filter(user=request.user.pk),
    }
    return render(request, "accounts/tokens.html", context, status=status)


@login_required
@require_POST
def revoke_token(request: HttpRequest, pk: int) -> HttpResponse:
    # Scoped to the requesting user: someone else's token id is a 404.
    token = get_object_or_404(ApiToken, pk=pk, user=request.user.pk)
    revoke_api_token(token)
    messages.success(request, f"Token {token.name!r} revoked.")
    return redirect("tokens")


@login_required
@require_http_methods(["GET", "POST"])
def account_settings(request: HttpRequest) -> HttpResponse:
    """The person's time zone: every time on the pages is shown in it."""
    current = timezones.chosen_time_zone(request.user)  # type: ignore[arg-type]
    form = TimeZoneForm(request.POST or None, initial={"time_zone": current or None})
    if request.method == "POST":
        if form.is_valid():
            name = form.cleaned_data["time_zone"]
            timezones.set_time_zone(request.user, name)  # type: ignore[arg-type]
            request.session[timezones.SESSION_KEY] = name
            messages.success(request, f"Times are now shown in {name}.")
            return redirect("account-settings")
        return render(request, "accounts/settings.html", {"form": form}, status=422)
    return render(request, "accounts/settings.html", {"form": form, "chosen": current})


@login_required
@require_POST
def browser_time_zone(request: HttpRequest) -> HttpResponse:
    """The browser's zone, sent by static/js/triage.js while the person has
    none: stored unless one was chosen meanwhile. ``stored`` tells the page
    whether to reload to show its times in it."""
    form = TimeZoneForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"error": "not a known IANA time zone"}, status=422)
    name = form.cleaned_data["time_zone"]
    stored = timezones.set_time_zone(request.user, name, unless_chosen=True)  # type: ignore[arg-type]
    # The session follows what is stored, which a lost race leaves as it was.
    request.session[timezones.SESSION_KEY] = timezones.chosen_time_zone(request.user)  # type: ignore[arg-type]
    return JsonResponse({"stored": stored, "time_zone": request.session[timezones.SESSION_KEY]})
