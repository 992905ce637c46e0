"""Admin for people's contact methods, schedules, policies, maintenance and pages."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from paging.models import (
    ContactMethod,
    EscalationLevel,
    EscalationPolicy,
    MaintenanceWindow,
    NotificationRule,
    Override,
    Page,
    Rotation,
    RotationMember,
    Schedule,
)


class NotificationRuleInline(admin.TabularInline[NotificationRule, ContactMethod]):
    model = NotificationRule
    extra = 0


@admin.register(ContactMethod)
class ContactMethodAdmin(admin.ModelAdmin[ContactMethod]):
    list_display = ("name", "user", "scheme", "position", "enabled", "last_test_result")
    list_filter = ("enabled",)
    search_fields = ("name", "user__username")
    inlines = (NotificationRuleInline,)


class RotationMemberInline(admin.TabularInline[RotationMember, Rotation]):
    model = RotationMember
    extra = 1


@admin.register(Rotation)
class RotationAdmin(admin.ModelAdmin[Rotation]):
    list_display = ("name", "schedule", "start", "shift_length", "shift_unit")
    list_filter = ("schedule", "shift_unit")
    inlines = (RotationMemberInline,)


class RotationInline(admin.TabularInline[Rotation, Schedule]):
    model = Rotation
    extra = 0
    show_change_link = True


class OverrideInline(admin.TabularInline[Override, Schedule]):
    model = Override
    extra = 0


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin[Schedule]):
    list_display = ("name", "slug", "time_zone")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    inlines = (RotationInline, OverrideInline)


class EscalationLevelInline(admin.StackedInline[EscalationLevel, EscalationPolicy]):
    model = EscalationLevel
    extra = 0
    filter_horizontal = ("users", "schedules")


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(admin.ModelAdmin[EscalationPolicy]):
    list_display = ("name", "repeat_count")
    search_fields = ("name",)
    inlines = (EscalationLevelInline,)


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(admin.ModelAdmin[MaintenanceWindow]):
    list_display = ("service", "start", "end", "reason")
    list_filter = ("service",)


@admin.register(Page)
class PageAdmin(admin.ModelAdmin[Page]):
    list_display = ("pk", "incident", "user", "channel", "level", "attempt", "status", "due_at")
    list_filter = ("status", "channel")
    search_fields = ("incident__title", "user__username", "error")
    list_select_related = ("incident", "user")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # pages are written by the escalation engine

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
