"""Where incidents are posted in chat, the messages posted, and who is who.

The posted message's id lives here (PostgreSQL), so every later change of the
incident edits that one message instead of posting another.
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models


class Provider(models.TextChoices):
    SLACK = "slack", "Slack"
    MATTERMOST = "mattermost", "Mattermost"


class ChatChannel(models.Model):
    """A channel the incidents of one service are posted to."""

    service = models.ForeignKey(
        "incidents.Service", on_delete=models.CASCADE, related_name="chat_channels"
    )
    provider = models.CharField(max_length=12, choices=Provider.choices)
    # Slack: the channel ID (C0123ABCD; the bot must be a member). Mattermost:
    # the channel's 26-character ID (channel menu → View Info).
    channel_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=models.Q(provider__in=Provider.values), name="chat_channel_provider_valid"
            ),
            models.UniqueConstraint(
                fields=["service", "provider", "channel_id"], name="chat_channel_once_per_service"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} {self.channel_id} ({self.service})"


class ChatMessage(models.Model):
    """The one message an incident has in a channel."""

    channel = models.ForeignKey(ChatChannel, on_delete=models.CASCADE, related_name="messages")
    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.CASCADE, related_name="chat_messages"
    )
    # Slack: the channel ID the message landed in and its ts; Mattermost: the
    # post id (message_channel is the channel id). Empty until it is posted.
    message_channel = models.CharField(max_length=64, blank=True, default="")
    message_id = models.CharField(max_length=64, blank=True, default="")
    posted_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints: ClassVar = [
            # Two sync tasks for a new incident cannot both post: both
            # get_or_create this row, and the unique index lets one insert.
            models.UniqueConstraint(
                fields=["channel", "incident"], name="chat_message_once_per_channel"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.incident} in {self.channel}"


class ChatIdentity(models.Model):
    """A chat user (per provider) acting as a triage user."""

    provider = models.CharField(max_length=12, choices=Provider.choices)
    chat_user_id = models.CharField(max_length=64)
    # Their handle in chat, for "Acknowledged by @alice".
    chat_username = models.CharField(max_length=100, blank=True, default="")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_identities"
    )
    # "email" (matched by a verified address) or "link" (the one-time page).
    linked_by = models.CharField(max_length=10)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "chat identities"
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=models.Q(provider__in=Provider.values),
                name="chat_identity_provider_valid",
            ),
            # A chat user acts as exactly one triage user; a second link is refused.
            models.UniqueConstraint(
                fields=["provider", "chat_user_id"], name="chat_identity_once_per_chat_user"
            ),
        ]

    def __str__(self) -> str:
        handle = self.chat_username or self.chat_user_id
        return f"{self.get_provider_display()} @{handle} → {self.user}"
