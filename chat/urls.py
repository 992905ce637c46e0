from __future__ import annotations

from django.urls import path

from chat import views

urlpatterns = [
    path("chat/slack/interactions", views.slack_interactions, name="chat-slack-interactions"),
    path("chat/slack/commands", views.slack_commands, name="chat-slack-commands"),
    path("chat/mattermost/actions", views.mattermost_actions, name="chat-mattermost-actions"),
    path("chat/mattermost/commands", views.mattermost_commands, name="chat-mattermost-commands"),
    path("chat/link/<str:token>", views.link, name="chat-link"),
]
