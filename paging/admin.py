"""Admin for people's contact methods, schedules, policies, maintenance and pages."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import Q, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from paging.escalation import release_holds
from paging.forms import PersonChoiceField, PersonMultipleChoiceField, RotationWithMembersForm
from paging.models import (
    ContactMethod,
    CoverRequest,
    EscalationLevel,
    EscalationPolicy,
    MaintenanceWindow,
    NotificationRule,
    Override,
    Page,
    Rotation,
    RotationMember,
    Schedule,
    ShiftChange,
)
from paging.policy_text import describe_policy
from paging.selectors import unreachable


class FullNames:
    """Pickers of people show "Ana Lima (ana)", ordered by name, not bare usernames."""

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.related_model is User:
            kwargs["form_class"] = PersonChoiceField
            kwargs["queryset"] = User.objects.order_by("first_name", "last_name", "username")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.related_model is User:
            kwargs["form_class"] = PersonMultipleChoiceField
            kwargs["queryset"] = User.objects.order_by("first_name", "last_name", "username")
        return super().formfield_for_manytomany(db_field, request, **kwargs)  # type: ignore[misc]


class NotificationRuleInline(admin.TabularInline[NotificationRule, ContactMethod]):
    model = NotificationRule
    extra = 0


@admin.register(ContactMethod)
class ContactMethodAdmin(FullNames, admin.ModelAdmin[ContactMethod]):
    list_display = ("name", "user", "scheme", "position", "enabled", "last_test_result")
    list_filter = ("enabled",)
    search_fields = ("name", "user__username")
    inlines = (NotificationRuleInline,)


class RotationMemberInline(FullNames, admin.TabularInline[RotationMember, Rotation]):
    model = RotationMember
    extra = 1


@admin.register(Rotation)
class RotationAdmin(admin.ModelAdmin[Rotation]):
    list_display = ("name", "schedule", "start", "shift_length", "shift_unit")
    list_filter = ("schedule", "shift_unit")
    inlines = (RotationMemberInline,)


class RotationInline(admin.TabularInline[Rotation, Schedule]):
    """Rotations with their members, in turn order, on the schedule's own page."""

    model = Rotation
    form = RotationWithMembersForm
    extra = 0
    show_change_link = True


class OverrideInline(FullNames, admin.TabularInline[Override, Schedule]):
    model = Override
    extra = 0


class WarnsUnreachable:
    """Admin change pages that warn, on GET, about each person the object
    pages whom nothing verified can reach (no method a test or a page was
    delivered to). Subclasses say who those people are."""

    unreachable_what = ""

    def paged_people(self, object_id: int) -> Any:
        raise NotImplementedError

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        if request.method == "GET" and object_id.isdigit():
            found = {person.pk: person for person in self.paged_people(int(object_id))}
            for pk, reason in sorted(unreachable(found.values()).items()):
                name = found[pk].get_username()
                messages.warning(
                    request, f"Cannot be reached: {name}, {self.unreachable_what}: {reason}."
                )
        return super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]


@admin.register(Schedule)
class ScheduleAdmin(WarnsUnreachable, admin.ModelAdmin[Schedule]):
    list_display = ("name", "slug", "time_zone")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    inlines = (RotationInline, OverrideInline)
    unreachable_what = "on this schedule"

    def paged_people(self, object_id: int) -> Any:
        return User.objects.filter(
            Q(pk__in=RotationMember.objects.filter(rotation__schedule_id=object_id).values("user"))
            | Q(pk__in=Override.objects.filter(schedule_id=object_id).values("user"))
        )


class EscalationLevelInline(FullNames, admin.StackedInline[EscalationLevel, EscalationPolicy]):
    model = EscalationLevel
    extra = 0
    filter_horizontal = ("users", "schedules")


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(WarnsUnreachable, admin.ModelAdmin[EscalationPolicy]):
    list_display = ("name", "summary")
    search_fields = ("name",)
    readonly_fields = ("summary",)
    inlines = (EscalationLevelInline,)
    unreachable_what = "paged by this policy"

    @admin.display(description="In plain words")
    def summary(self, obj: EscalationPolicy) -> str:
        return describe_policy(obj) if obj.pk else "Save the policy to see it in plain words."

    def paged_people(self, object_id: int) -> Any:
        levels = {"escalationlevel__policy_id": object_id}
        direct = EscalationLevel.users.through.objects.filter(**levels)
        schedules = EscalationLevel.schedules.through.objects.filter(**levels)
        on_schedules = RotationMember.objects.filter(
            rotation__schedule__in=schedules.values("schedule")
        )
        return User.objects.filter(
            Q(pk__in=direct.values("user")) | Q(pk__in=on_schedules.values("user"))
        )


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(admin.ModelAdmin[MaintenanceWindow]):
    """A window cut short, moved or deleted lets go of the incidents it held
    at once, instead of at its old end (``escalation.release_holds``)."""

    list_display = ("service", "start", "end", "reason")
    list_filter = ("service",)

    def save_model(
        self, request: HttpRequest, obj: MaintenanceWindow, form: ModelForm[Any], change: bool
    ) -> None:
        before = MaintenanceWindow.objects.filter(pk=obj.pk).values_list("service_id", flat=True)
        services = {*before, obj.service_id} if change else set()
        super().save_model(request, obj, form, change)
        for service_id in services:
            release_holds(service_id)

    def delete_model(self, request: HttpRequest, obj: MaintenanceWindow) -> None:
        super().delete_model(request, obj)
        release_holds(obj.service_id)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[MaintenanceWindow]) -> None:
        services = set(queryset.values_list("service_id", flat=True))
        super().delete_queryset(request, queryset)
        for service_id in services:
            release_holds(service_id)


@admin.register(CoverRequest)
class CoverRequestAdmin(FullNames, admin.ModelAdmin[CoverRequest]):
    """Responders make and answer requests from /oncall; staff may look and fix."""

    list_display = ("schedule", "requester", "asked", "start", "end", "status", "decided_by")
    list_filter = ("status", "schedule")
    list_select_related = ("schedule", "requester", "asked", "decided_by")


@admin.register(ShiftChange)
class ShiftChangeAdmin(admin.ModelAdmin[ShiftChange]):
    """The audit trail of responders' shift changes: read only."""

    list_display = ("at", "schedule", "actor", "what")
    list_filter = ("schedule",)
    search_fields = ("what", "actor__username")
    list_select_related = ("schedule", "actor")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
