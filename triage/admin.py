"""Admin for the outbound policy's allow rules (``triage.outbound``)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.forms import ModelForm
from django.http import HttpRequest

from triage.models import OutboundAllowRule


@admin.register(OutboundAllowRule)
class OutboundAllowRuleAdmin(admin.ModelAdmin[OutboundAllowRule]):
    list_display = ("target", "note", "added_by", "created_at")
    search_fields = ("target", "note")
    readonly_fields = ("added_by", "created_at")

    def save_model(
        self, request: HttpRequest, obj: OutboundAllowRule, form: ModelForm[Any], change: bool
    ) -> None:
        if not change:
            obj.added_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)
