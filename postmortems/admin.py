"""Back-office edits of post-mortems and their action items. Statuses change
only through the services (the publish action, the editor), so publishing
from the admin still stamps the time, notes the incident and notifies."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from postmortems import services
from postmortems.models import ActionItem, PostMortem, PostMortemStatus
from triage.errors import DomainError


class ActionItemInline(admin.TabularInline[ActionItem, PostMortem]):
    model = ActionItem
    fields = (
        "position",
        "priority",
        "action",
        "type",
        "details",
        "owner",
        "status",
        "commit",
        "link",
        "implemented_by",
        "done_at",
    )
    readonly_fields = ("status", "implemented_by", "done_at")
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    extra = 0
    ordering = ("position", "pk")


@admin.action(description="Publish selected post-mortems")
def publish_selected(
    modeladmin: admin.ModelAdmin[PostMortem], request: HttpRequest, queryset: QuerySet[PostMortem]
) -> None:
    done, refused = 0, []
    for post_mortem in queryset:
        try:
            services.change_postmortem_status(
                post_mortem, PostMortemStatus.PUBLISHED, actor=request.user
            )
            done += 1
        except DomainError as exc:
            refused.append(exc.detail)
    if done:
        modeladmin.message_user(request, f"Published {done} post-mortem(s).")
    for detail in refused:
        modeladmin.message_user(request, detail, level=messages.WARNING)


@admin.register(PostMortem)
class PostMortemAdmin(admin.ModelAdmin[PostMortem]):
    list_display = ("title", "incident", "status", "severity", "started_at", "published_at")
    list_filter = ("status", "severity")
    search_fields = ("title", "slug", "summary", "affected_services")
    date_hierarchy = "started_at"
    list_select_related = ("incident",)
    raw_id_fields = ("incident",)
    inlines = (ActionItemInline,)
    actions = (publish_selected,)
    readonly_fields = ("status", "published_at", "created_at", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # drafted from a resolved incident, which fills in its facts


@admin.register(ActionItem)
class ActionItemAdmin(admin.ModelAdmin[ActionItem]):
    list_display = ("action", "priority", "type", "status", "post_mortem", "done_at")
    list_filter = ("status", "priority", "type")
    search_fields = ("action", "details", "commit", "implemented_by")
    list_select_related = ("post_mortem",)
    raw_id_fields = ("post_mortem",)
    readonly_fields = ("status", "implemented_by", "done_at", "created_at", "updated_at")
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # add items on their post-mortem, where positions are kept
