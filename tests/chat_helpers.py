"""Requests signed and sent the way Slack and Mattermost send them, and the
settings that point triage at the local stand-in (tests/chat_server.py).

Signatures are computed here from Slack's documentation, independently of
the code under test: ``v0=HMAC-SHA256(signing secret, "v0:{ts}:{body}")``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

from django.test import Client

from tests.chat_server import MATTERMOST_TOKEN, SLACK_TOKEN, ChatServer

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
COMMAND_TOKEN = "mattermost-slash-command-token"
BASE_URL = "https://triage.example.org"


def chat_env(server: ChatServer) -> dict[str, str]:
    """Environment (and settings) that turn both providers on against ``server``."""
    return {
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_API_URL": server.slack_url,
        "MATTERMOST_URL": server.mattermost_url,
        "MATTERMOST_BOT_TOKEN": MATTERMOST_TOKEN,
        "MATTERMOST_COMMAND_TOKEN": COMMAND_TOKEN,
        "BASE_URL": BASE_URL,
    }


def slack_signature(body: str, timestamp: int, secret: str = SIGNING_SECRET) -> str:
    basestring = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), basestring, hashlib.sha256).hexdigest()


def slack_post(
    client: Client,
    path: str,
    body: str,
    *,
    age: float = 0,
    secret: str = SIGNING_SECRET,
    signed: bool = True,
) -> Any:
    timestamp = int(time.time() - age)
    headers = (
        {
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": slack_signature(body, timestamp, secret),
        }
        if signed
        else {}
    )
    return client.post(
        path, data=body, content_type="application/x-www-form-urlencoded", headers=headers
    )


def button_press(incident_id: int, action: str, user_id: str = "U0ALICE", **kw: Any) -> str:
    """The form body of a Slack block_actions interaction on a triage button."""
    payload = {
        "type": "block_actions",
        "team": {"id": "T0TEAM", "domain": "example"},
        "user": {"id": user_id, "username": kw.get("username", "alice"), "team_id": "T0TEAM"},
        "api_app_id": "A0APP",
        "trigger_id": "123.456.abc",
        "channel": {"id": kw.get("channel", "C0INCIDENTS"), "name": "incidents"},
        "message": {"type": "message", "ts": kw.get("ts", "1700000000.000001")},
        "response_url": "https://hooks.slack.com/actions/T0TEAM/1/xyz",
        "actions": [
            {
                "type": "button",
                "action_id": f"triage_{action}",
                "block_id": f"triage-incident-{incident_id}",
                "value": kw.get("value", str(incident_id)),
                "action_ts": "1700000002.000000",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


def slash_command(text: str, user_id: str = "U0ALICE", username: str = "alice") -> str:
    """The form body Slack posts for ``/triage <text>``."""
    return urlencode(
        {
            "token": "deprecated-verification-token",
            "team_id": "T0TEAM",
            "team_domain": "example",
            "channel_id": "C0INCIDENTS",
            "channel_name": "incidents",
            "user_id": user_id,
            "user_name": username,
            "command": "/triage",
            "text": text,
            "api_app_id": "A0APP",
            "response_url": "https://hooks.slack.com/commands/T0TEAM/1/xyz",
            "trigger_id": "123.456.abc",
        }
    )
