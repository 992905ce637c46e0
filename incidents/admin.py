"""Back-office views. Status changes go through the same services as the UI."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from incidents import services
from incidents.models import Incident, JoinedRequest, Service, TimelineEvent
from triage.errors import DomainError


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin[Service]):
    list_display = ("name", "slug", "public", "public_name", "created_at")
    list_filter = ("public",)
    search_fields = ("name", "slug", "description")
    prepopulated_fields = {"slug": ("name",)}


class TimelineInline(admin.TabularInline[TimelineEvent, Incident]):
    model = TimelineEvent
    fields = ("created_at", "kind", "actor", "message")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("created_at", "pk")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _apply(
    modeladmin: admin.ModelAdmin[Incident],
    request: HttpRequest,
    queryset: QuerySet[Incident],
    action: Any,
    verb: str,
) -> None:
    done, refused = 0, []
    for incident in queryset:
        try:
            action(incident, actor=request.user)
            done += 1
        except DomainError as exc:
            refused.append(exc.detail)
    if done:
        modeladmin.message_user(request, f"{verb.capitalize()} {done} incident(s).")
    for detail in refused:
        modeladmin.message_user(request, detail, level=messages.WARNING)


@admin.action(description="Acknowledge selected incidents")
def acknowledge_selected(
    modeladmin: admin.ModelAdmin[Incident], request: HttpRequest, queryset: QuerySet[Incident]
) -> None:
    _apply(modeladmin, request, queryset, services.acknowledge_incident, "acknowledged")


@admin.action(description="Resolve selected incidents")
def resolve_selected(
    modeladmin: admin.ModelAdmin[Incident], request: HttpRequest, queryset: QuerySet[Incident]
) -> None:
    _apply(modeladmin, request, queryset, services.resolve_incident, "resolved")


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin[Incident]):
    list_display = ("id", "title", "service", "severity", "status", "source", "opened_at")
    list_filter = ("status", "severity", "source", "service")
    search_fields = ("title", "dedup_key", "details")
    date_hierarchy = "opened_at"
    list_select_related = ("service",)
    inlines = (TimelineInline,)
    actions = (acknowledge_selected, resolve_selected)
    # Status and its who/when fields change only through the services.
    readonly_fields = (
        "status",
        "is_storm",
        "source",
        "idempotency_key",
        "request_fingerprint",
        "opened_at",
        "opened_by",
        "acknowledged_at",
        "acknowledged_by",
        "resolved_at",
        "resolved_by",
        "escalation_level",
        "next_escalation_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # open incidents through the UI or API, which page people


@admin.register(TimelineEvent)
class TimelineEventAdmin(admin.ModelAdmin[TimelineEvent]):
    list_display = ("created_at", "incident", "kind", "actor", "message")
    list_filter = ("kind",)
    search_fields = ("message",)
    list_select_related = ("incident", "actor")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the timeline is a record; it is not edited


@admin.register(JoinedRequest)
class JoinedRequestAdmin(admin.ModelAdmin[JoinedRequest]):
    """Idempotency keys of requests that joined an open incident: a record."""

    list_display = ("created_at", "key", "incident")
    search_fields = ("key",)
    list_select_related = ("incident",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
