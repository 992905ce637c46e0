"""What an incident's chat message says, for Slack (blocks) and Mattermost
(a message attachment): severity, title, status, who is paged, and the
buttons that still make sense for its status."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User

from chat import mattermost
from chat.models import ChatIdentity, Provider
from incidents.models import EventKind, Incident, Status

# The buttons, in order, and the statuses each is offered in.
ACTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "acknowledge": ("Acknowledge", (Status.TRIGGERED,)),
    "resolve": ("Resolve", (Status.TRIGGERED, Status.ACKNOWLEDGED)),
    "escalate": ("Escalate", (Status.TRIGGERED, Status.ACKNOWLEDGED)),
}
_COLOURS = {Status.TRIGGERED: "#d93f0b", Status.ACKNOWLEDGED: "#fbca04", Status.RESOLVED: "#0e8a16"}


@dataclass(frozen=True)
class Summary:
    headline: str  # "SEV2 · #42 Checkout down"
    status: str  # "Acknowledged by @alice"
    paged: str  # "alice, bob" or ""
    url: str
    actions: list[str]  # the buttons to show

    def text(self, clean: Callable[[str], str]) -> str:
        """Plain text (notifications, clients that show no blocks); ``clean``
        makes the parts that come from alerts harmless."""
        paged = f" · Paged: {self.paged}" if self.paged else ""
        return f"{clean(self.headline)} · {self.status}{paged}"


def _handle(user: User | None, provider: str) -> str:
    if user is None:
        return "triage"
    identity = (
        ChatIdentity.objects.filter(user=user, provider=provider).order_by("created_at").first()
    )
    return (
        f"@{identity.chat_username}"
        if identity and identity.chat_username
        else (f"@{user.get_username()}")
    )


def _paged(incident: Incident) -> str:
    event = (
        incident.timeline.filter(kind=EventKind.PAGED, data__has_key="paged")
        .order_by("-created_at", "-pk")
        .first()
    )
    return ", ".join(event.data["paged"]) if event else ""


def summarize(incident: Incident, provider: str) -> Summary:
    if incident.status == Status.ACKNOWLEDGED:
        status = f"Acknowledged by {_handle(incident.acknowledged_by, provider)}"
    elif incident.status == Status.RESOLVED:
        status = f"Resolved by {_handle(incident.resolved_by, provider)}"
    else:
        status = "Triggered"
    return Summary(
        headline=f"{incident.get_severity_display()} · #{incident.pk} {incident.title}",
        status=status,
        paged=_paged(incident),
        url=settings.BASE_URL + incident.get_absolute_url(),
        actions=[name for name, (_, shown) in ACTIONS.items() if incident.status in shown],
    )


def slack_blocks(incident: Incident, summary: Summary) -> list[dict[str, Any]]:
    paged = f" · Paged: {summary.paged}" if summary.paged else ""
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"*<{summary.url}|{_escape(summary.headline)}>*\n"
                f"{_escape(str(incident.service))} · *{_escape(summary.status)}*{_escape(paged)}",
            },
        }
    ]
    if summary.actions:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"triage-incident-{incident.pk}",
                "elements": [
                    {
                        "type": "button",
                        "action_id": f"triage_{name}",
                        "text": {"type": "plain_text", "text": ACTIONS[name][0]},
                        "value": str(incident.pk),
                        **({"style": "primary"} if name == "acknowledge" else {}),
                    }
                    for name in summary.actions
                ],
            }
        )
    return blocks


def _escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters: unescaped, a
    # title like "<!channel> disk full" from an alert would notify everyone.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _defuse(text: str) -> str:
    # Mattermost notifies the whole channel for @all, @channel and @here in
    # a post; text from alerts must not. A zero-width space after "@" keeps
    # the look and breaks the mention.
    return text.replace("@", "@\u200b")


def mattermost_props(incident: Incident, summary: Summary) -> dict[str, Any]:
    actions_url = settings.BASE_URL + "/chat/mattermost/actions"
    return {
        "attachments": [
            {
                "fallback": summary.text(_defuse),
                "color": _COLOURS[Status(incident.status)],
                "title": _defuse(summary.headline),
                "title_link": summary.url,
                "text": f"{_defuse(str(incident.service))} · **{summary.status}**"
                + (f" · Paged: {summary.paged}" if summary.paged else ""),
                "actions": [
                    {
                        "id": name,
                        "name": ACTIONS[name][0],
                        "integration": {
                            "url": actions_url,
                            "context": {
                                "action": name,
                                "incident": incident.pk,
                                "token": mattermost.action_token(incident.pk, name),
                            },
                        },
                    }
                    for name in summary.actions
                ],
            }
        ]
    }


def for_provider(incident: Incident, provider: str) -> tuple[str, Any]:
    """The message text and the provider's rich part (Slack blocks, Mattermost props)."""
    summary = summarize(incident, provider)
    if provider == Provider.SLACK:
        return summary.text(_escape), slack_blocks(incident, summary)
    return summary.text(_defuse), mattermost_props(incident, summary)
