"""The chat round trip with a real Celery worker: an incident opens, the
worker posts it to Slack with buttons, a signed button press acknowledges it
as the linked user, and the worker edits the same message to say so."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User
from django.test import Client

from chat.models import ChatChannel, ChatIdentity, ChatMessage
from incidents.models import Service, Status
from incidents.services import open_incident
from tests.chat_helpers import button_press, chat_env, slack_post
from tests.chat_server import ChatServer
from tests.factories import policy_with_levels
from tests.processes import app_env, celery_worker, wait_for


def blocks_text(call: dict[str, object]) -> str:
    blocks = call["blocks"]
    assert isinstance(blocks, list)
    return " ".join(str(block.get("text", {}).get("text", "")) for block in blocks)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_incident_posted_acknowledged_from_slack_and_edited_in_place(
    chat_api: ChatServer, web: Service, alice: User, redis: object
) -> None:
    web.escalation_policy = policy_with_levels((5, [alice]))
    web.save()
    ChatChannel.objects.create(service=web, provider="slack", channel_id="C0INCIDENTS")
    ChatIdentity.objects.create(
        provider="slack",
        chat_user_id="U0ALICE",
        chat_username="alice",
        user=alice,
        linked_by="link",
    )
    with celery_worker(env=app_env(**chat_env(chat_api))):
        incident = open_incident(service=web, title="Checkout down", severity="critical").incident

        wait_for(
            lambda: (
                "Paged: alice"
                in " ".join(
                    blocks_text(c)
                    for c in chat_api.called("chat.postMessage") + chat_api.called("chat.update")
                )
            ),
            30,
            "the worker to post the incident and who is paged",
        )
        [posted] = chat_api.called("chat.postMessage")
        assert f"SEV1 · #{incident.pk} Checkout down" in blocks_text(posted)
        stored = ChatMessage.objects.filter(incident=incident).exclude(message_id="")
        wait_for(stored.exists, 10, "the worker to keep the message's ts")
        ts = stored.get().message_id

        pressed = slack_post(
            Client(), "/chat/slack/interactions", button_press(incident.pk, "acknowledge", ts=ts)
        )
        assert pressed.status_code == 200
        incident.refresh_from_db()
        assert incident.status == Status.ACKNOWLEDGED
        assert incident.acknowledged_by == alice
        assert incident.timeline.filter(message="by alice from Slack").exists()

        wait_for(
            lambda: any(
                "Acknowledged by @alice" in blocks_text(c) for c in chat_api.called("chat.update")
            ),
            30,
            "the worker to edit the message",
        )
        time.sleep(0.5)  # anything still queued would land now
        assert len(chat_api.called("chat.postMessage")) == 1
        final = chat_api.called("chat.update")[-1]
        assert final["ts"] == ts
        assert "Acknowledged by @alice" in blocks_text(final)
