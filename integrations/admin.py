"""Back-office for integration keys: create (the key is shown once, with its
configuration), rotate, revoke; email integrations' addresses and rules; the
alerts tracked per incident and the change events per service, read-only."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from integrations.config import snippets
from integrations.email_routes import attach_email_settings
from integrations.keys import NewKey, create_integration, revoke_integration, rotate_key
from integrations.models import Alert, ChangeEvent, EmailSettings, Integration, Kind

EDITABLE = (
    "service",
    "kind",
    "name",
    "grouping",
    "severity_label",
    "default_severity",
    "rate_limit_per_minute",
    "heartbeat_timeout_seconds",
)


def _snippet_html(new: NewKey | Integration) -> SafeString:
    integration, raw = (new.integration, new.raw) if isinstance(new, NewKey) else (new, None)
    return format_html_join(
        "",
        "<p><strong>{}</strong></p><pre>{}</pre>",
        ((snippet.title, snippet.text) for snippet in snippets(integration, raw)),
    )


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin[Integration]):
    list_display = (
        "name",
        "service",
        "kind",
        "key_prefix",
        "created_at",
        "rotated_at",
        "revoked_at",
    )
    list_filter = ("kind", "service")
    search_fields = ("name", "key_prefix", "service__name")
    list_select_related = ("service",)
    readonly_fields = (
        "key_prefix",
        "created_at",
        "created_by",
        "rotated_at",
        "revoked_at",
        "last_ping_at",
        "heartbeat_due_at",
        "heartbeat_down",
        "configuration",
    )
    actions = ("rotate_selected", "revoke_selected")

    def get_fields(self, request: HttpRequest, obj: Integration | None = None) -> tuple[str, ...]:
        if obj is None:
            return EDITABLE
        return (*EDITABLE, *self.readonly_fields)

    @admin.display(description="Configuration")
    def configuration(self, obj: Integration) -> SafeString:
        return _snippet_html(obj)

    def save_model(self, request: HttpRequest, obj: Integration, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            if (
                obj.kind == Kind.EMAIL
                and not EmailSettings.objects.filter(integration=obj).exists()
            ):
                attach_email_settings(obj)  # turned into an email integration: needs an address
            return
        options = {field: getattr(obj, field) for field in EDITABLE[3:]}
        created = create_integration(
            service=obj.service, kind=obj.kind, name=obj.name, actor=request.user, **options
        )
        obj.pk = created.integration.pk
        obj.refresh_from_db()
        self._show_key(request, created)

    def _show_key(self, request: HttpRequest, created: NewKey) -> None:
        if created.integration.kind == Kind.EMAIL:
            self.message_user(
                request,
                format_html(
                    "Email integration {} receives mail at <code>{}</code> (change it under "
                    "Email integration settings).",
                    created.integration.name,
                    created.integration.email.address,
                ),
            )
            return
        self.message_user(
            request,
            format_html(
                "Key for {}: <code>{}</code> — copy it now, it is shown only once.{}",
                created.integration.name,
                created.raw,
                _snippet_html(created),
            ),
            level=messages.WARNING,
        )

    @admin.action(description="Rotate the keys of selected integrations")
    def rotate_selected(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        for integration in queryset.filter(revoked_at__isnull=True):
            self._show_key(request, rotate_key(integration))

    @admin.action(description="Revoke selected integrations")
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        for integration in queryset:
            revoke_integration(integration)
        self.message_user(request, f"Revoked {queryset.count()} integration(s).")


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin[Alert]):
    list_display = ("fingerprint", "incident", "integration", "status", "last_seen_at")
    list_filter = ("status",)
    search_fields = ("fingerprint", "labels")
    list_select_related = ("incident", "integration")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # written by the webhook only


class EmailSettingsForm(forms.ModelForm[EmailSettings]):
    def clean_address(self) -> str:
        # Lower case before the unique check runs, as routing compares it.
        return str(self.cleaned_data["address"]).strip().lower()


@admin.register(EmailSettings)
class EmailSettingsAdmin(admin.ModelAdmin[EmailSettings]):
    """Each email integration's address and rules. Rows come with the
    integration (created as kind Email), so they are edited here, not added."""

    form = EmailSettingsForm

    list_display = ("address", "integration", "dedup_header", "resolve_by_subject")
    search_fields = ("address", "integration__name", "integration__service__name")
    list_select_related = ("integration__service",)
    readonly_fields = ("integration",)
    fields = (
        "integration",
        "address",
        "dedup_header",
        "dedup_pattern",
        "resolve_by_subject",
        "resolve_pattern",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke the integration instead


@admin.register(ChangeEvent)
class ChangeEventAdmin(admin.ModelAdmin[ChangeEvent]):
    list_display = ("summary", "service", "source", "occurred_at", "received_at")
    list_filter = ("service",)
    search_fields = ("summary", "source")
    list_select_related = ("service",)
    date_hierarchy = "occurred_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # written by /v2/change/enqueue only; deleting is allowed
