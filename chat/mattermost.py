"""Mattermost: verifying its requests, and the REST API v4 calls triage makes.

Slash commands carry the command's token in the form body. Button presses
(interactive message actions) carry no token of their own, so each button
triage posts has, in its server-side ``context``, an HMAC of the incident
and action keyed with the command token; a press is accepted only with the
right one. Outbound calls use ``requests`` with the bot's token, each
through ``transport.send``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import requests
from django.conf import settings

from chat.transport import ChatNotFound, send


def enabled() -> bool:
    return bool(
        settings.MATTERMOST_URL
        and settings.MATTERMOST_BOT_TOKEN
        and settings.MATTERMOST_COMMAND_TOKEN
    )


def command_verified(token: str) -> bool:
    if not enabled() or not token:
        return False
    return hmac.compare_digest(token.encode(), settings.MATTERMOST_COMMAND_TOKEN.encode())


def action_token(incident_id: int, action: str) -> str:
    message = f"mattermost-action:{incident_id}:{action}".encode()
    key = settings.MATTERMOST_COMMAND_TOKEN.encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def action_verified(incident_id: int, action: str, token: str) -> bool:
    if not enabled() or not token:
        return False
    return hmac.compare_digest(token.encode(), action_token(incident_id, action).encode())


def _call(method: str, path: str, json: dict[str, Any] | None = None) -> dict[str, Any]:
    def call() -> dict[str, Any]:
        response = requests.request(
            method,
            f"{settings.MATTERMOST_URL}/api/v4/{path}",
            json=json,
            headers={"Authorization": f"Bearer {settings.MATTERMOST_BOT_TOKEN}"},
            timeout=settings.CHAT_TIMEOUT,
            allow_redirects=False,
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    return send("Mattermost", call)


def create_post(channel_id: str, message: str, props: dict[str, Any]) -> str:
    """Post to a channel; the new post's id."""
    post = _call("POST", "posts", {"channel_id": channel_id, "message": message, "props": props})
    return str(post["id"])


def update_post(post_id: str, message: str, props: dict[str, Any]) -> None:
    _call("PUT", f"posts/{post_id}", {"id": post_id, "message": message, "props": props})


def verified_email(user_id: str) -> str | None:
    """The Mattermost user's email, only when Mattermost marks it verified."""
    try:
        user = _call("GET", f"users/{user_id}")
    except ChatNotFound:
        return None  # a user Mattermost does not know is vouched for by nobody
    if user.get("delete_at") or user.get("is_bot") or user.get("email_verified") is not True:
        return None
    email = user.get("email")
    return str(email) if email else None
