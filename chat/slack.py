"""Slack: verifying its requests, and the Web API calls triage makes.

Requests from Slack are signed with the app's signing secret
(``X-Slack-Signature: v0=HMAC-SHA256(secret, "v0:{timestamp}:{body}")``);
``slack_sdk``'s verifier checks the signature and refuses timestamps more
than five minutes away. Outbound calls use ``slack_sdk.WebClient`` pointed
at ``SLACK_API_URL``, each through ``transport.send``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from chat.transport import ChatNotFound, send


def enabled() -> bool:
    return bool(settings.SLACK_SIGNING_SECRET and settings.SLACK_BOT_TOKEN)


def verified(body: bytes, headers: Mapping[str, str]) -> bool:
    """True only for a request Slack signed in the last five minutes."""
    if not enabled():
        return False
    try:
        return SignatureVerifier(settings.SLACK_SIGNING_SECRET).is_valid_request(body, headers)
    except (ValueError, UnicodeDecodeError):  # a timestamp that is not a number, bad bytes
        return False


def _client() -> WebClient:
    return WebClient(
        token=settings.SLACK_BOT_TOKEN,
        base_url=settings.SLACK_API_URL,
        timeout=int(settings.CHAT_TIMEOUT),
    )


def post_message(channel: str, text: str, blocks: list[dict[str, Any]]) -> tuple[str, str]:
    """Post to a channel; the channel ID and ts that identify the message."""
    response = send(
        "Slack", lambda: _client().chat_postMessage(channel=channel, text=text, blocks=blocks)
    )
    return str(response["channel"]), str(response["ts"])


def update_message(channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
    send("Slack", lambda: _client().chat_update(channel=channel, ts=ts, text=text, blocks=blocks))


def post_ephemeral(channel: str, user: str, text: str) -> None:
    send("Slack", lambda: _client().chat_postEphemeral(channel=channel, user=user, text=text))


def verified_email(user_id: str) -> str | None:
    """The Slack user's email, only when Slack says it is confirmed.

    ``users.info`` returns ``profile.email`` with the users:read.email scope;
    ``is_email_confirmed`` is Slack's own statement that the address was
    verified. Without it anybody could set a colleague's address and act as
    them. Deleted users and bots never match.
    """
    try:
        response = send("Slack", lambda: _client().users_info(user=user_id))
    except ChatNotFound:
        return None  # a user Slack does not know is vouched for by nobody
    user = response.get("user") or {}
    if user.get("deleted") or user.get("is_bot") or user.get("is_email_confirmed") is not True:
        return None
    email = (user.get("profile") or {}).get("email")
    return str(email) if email else None
