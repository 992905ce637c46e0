"""The integrations page: every integration with its ready-to-paste
configuration; staff create, rotate and revoke keys (a new key is shown once)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from integrations.config import snippets
from integrations.forms import IntegrationForm
from integrations.keys import NewKey, create_integration, revoke_integration, rotate_key
from integrations.models import Integration


def _require_staff(request: HttpRequest) -> None:
    if not request.user.is_staff:
        raise PermissionDenied("Only staff can create, rotate or revoke integration keys.")


def _page(
    request: HttpRequest,
    *,
    form: IntegrationForm | None = None,
    created: NewKey | None = None,
    status: int = 200,
) -> HttpResponse:
    integrations = Integration.objects.select_related("service", "email").order_by(
        "revoked_at", "service__name", "name", "pk"
    )
    context: dict[str, Any] = {
        "rows": [(integration, snippets(integration)) for integration in integrations],
        "form": form or IntegrationForm(),
        "created": created,
        "created_snippets": snippets(created.integration, created.raw) if created else [],
    }
    return render(request, "integrations/list.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def integrations(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _page(request)
    _require_staff(request)
    form = IntegrationForm(request.POST)
    if not form.is_valid():
        return _page(request, form=form, status=422)
    data = {name: form.cleaned_data[name] for name in form.Meta.fields}
    created = create_integration(
        service=data.pop("service"),
        kind=data.pop("kind"),
        name=data.pop("name"),
        actor=request.user,
        email=form.email_options(),
        **data,
    )
    return _page(request, created=created)


@login_required
@require_POST
def rotate(request: HttpRequest, pk: int) -> HttpResponse:
    _require_staff(request)
    integration = get_object_or_404(Integration, pk=pk, revoked_at__isnull=True)
    return _page(request, created=rotate_key(integration))


@login_required
@require_POST
def revoke(request: HttpRequest, pk: int) -> HttpResponse:
    _require_staff(request)
    integration = get_object_or_404(Integration, pk=pk)
    revoke_integration(integration)
    messages.success(request, f"Integration {integration.name!r} revoked; its key stops working.")
    return redirect("integrations")
