"""Back-office for chat: which channel each service posts to, the messages
posted (read-only), and which chat account acts as whom."""

from __future__ import annotations

from typing import ClassVar

from django.contrib import admin

from chat.models import ChatChannel, ChatIdentity, ChatMessage


@admin.register(ChatChannel)
class ChatChannelAdmin(admin.ModelAdmin[ChatChannel]):
    list_display = ("service", "provider", "channel_id", "created_at")
    list_filter = ("provider",)
    search_fields = ("service__name", "channel_id")
    autocomplete_fields: ClassVar = ["service"]


@admin.register(ChatMessage)
class ChatMessageAdmin(admin.ModelAdmin[ChatMessage]):
    list_display = ("incident", "channel", "message_id", "posted_at", "updated_at")
    readonly_fields = (
        "channel",
        "incident",
        "message_channel",
        "message_id",
        "posted_at",
        "updated_at",
    )

    def has_add_permission(self, request: object) -> bool:
        return False


@admin.register(ChatIdentity)
class ChatIdentityAdmin(admin.ModelAdmin[ChatIdentity]):
    list_display = ("chat_username", "provider", "chat_user_id", "user", "linked_by", "created_at")
    list_filter = ("provider", "linked_by")
    search_fields = ("chat_username", "chat_user_id", "user__username")
    autocomplete_fields: ClassVar = ["user"]
