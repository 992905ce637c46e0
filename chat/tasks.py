"""Celery tasks: thin adapters over chat.services. Nothing here runs in a web
request or in the escalation loop; both only queue these."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from chat import services, slack
from chat.services import ChatUser
from chat.transport import ChatUnavailable

logger = logging.getLogger(__name__)


@shared_task(
    name="chat.sync_message",
    ignore_result=True,
    autoretry_for=(ChatUnavailable,),
    retry_backoff=2,
    retry_backoff_max=300,
    max_retries=8,
)
def sync_message(incident_id: int, channel_id: int) -> str:
    return services.sync_message(incident_id, channel_id)


@shared_task(
    name="chat.slack_unlinked",
    ignore_result=True,
    autoretry_for=(ChatUnavailable,),
    retry_backoff=2,
    max_retries=3,
)
def slack_unlinked(user: dict[str, str], channel: str, command: dict[str, Any]) -> str:
    """A Slack user triage does not know pressed a button or ran a command.

    Slack takes answers to button presses only through its API, so this
    runs in a worker: link by verified email and act, or answer with the
    linking link (ephemeral, only they see it).
    """
    chat_user = ChatUser("slack", user["id"], user["name"])
    # Retried while nothing has been done yet (Slack unreachable for the
    # look-up or the linking answer)...
    person = services.link_by_email(chat_user)
    if person is None:
        slack.post_ephemeral(channel, chat_user.user_id, services.linking_answer(chat_user))
        return "asked to link"
    answer = services.run_command(person, services.Command(**command), provider="slack")
    # ...but never once it acted: a retry would escalate a second time.
    reply_in_slack(channel, chat_user.user_id, answer.text)
    return "acted"


@shared_task(name="chat.slack_reply", ignore_result=True)
def slack_reply(channel: str, user_id: str, text: str) -> None:
    reply_in_slack(channel, user_id, text)


def reply_in_slack(channel: str, user_id: str, text: str) -> None:
    """An answer only the user sees; a lost one is logged, not retried."""
    try:
        slack.post_ephemeral(channel, user_id, text)
    except ChatUnavailable as exc:
        logger.warning("could not answer in Slack: %s", exc)
