"""What a page says, and the links in it that let the person act.

Every page's message carries Acknowledge / Resolve / Escalate links signed
for that person and incident (``paging.links``) and an Open link to the
incident's page. Channels with action buttons show them as buttons: ntfy
(apprise passes its ``actions`` and ``click`` URL parameters on as ntfy's
``X-Actions`` and ``X-Click`` headers). Everywhere else they are plain links,
one per line, at the end of the body: apprise's Slack, Telegram and
Mattermost senders post text only (no buttons or inline keyboards).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from django.conf import settings

from incidents.models import Severity
from paging import links
from paging.models import LinkAction, Page

# apprise's ntfy URL schemes; ntfy shows at most three action buttons, so
# Open becomes the notification's click target instead of a fourth button.
NTFY_SCHEMES = frozenset({"ntfy", "ntfys"})


@dataclass(frozen=True)
class Action:
    label: str
    url: str


@dataclass(frozen=True)
class Outgoing:
    """A message ready for ``notify.send`` on one channel."""

    url: str
    title: str
    body: str


@dataclass(frozen=True)
class Message:
    title: str
    text: str  # what happened, without the links
    actions: tuple[Action, ...]  # the signed ones first, Open last

    @property
    def body(self) -> str:
        lines = "\n".join(f"{action.label}: {action.url}" for action in self.actions)
        return f"{self.text}\n\n{lines}"

    def for_channel(self, url: str) -> Outgoing:
        """The message as it goes to the apprise ``url``: buttons where the
        channel has them, links in the body elsewhere."""
        parts = urlsplit(url)
        if parts.scheme.lower() not in NTFY_SCHEMES:
            return Outgoing(url=url, title=self.title, body=self.body)
        *buttons, open_link = self.actions
        query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("actions", "click")]
        # ntfy's short action format: "view, <label>, <url>" separated by ";".
        # Signed links hold no "," or ";" (URL-safe base64 and ":").
        if buttons:
            query.append(("actions", "; ".join(f"view, {b.label}, {b.url}" for b in buttons)))
        query.append(("click", open_link.url))
        with_buttons = urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))
        return Outgoing(url=with_buttons, title=self.title, body=self.text)


def page_message(page: Page) -> Message:
    """The message paging ``page.user`` about ``page.incident``."""
    incident = page.incident
    severity = Severity(incident.severity).label
    open_url = f"{settings.BASE_URL}{incident.get_absolute_url()}"
    signed: list[Action] = []
    if page.user_id is not None:
        nonce = links.new_nonce()
        signed = [
            Action(
                str(action.label),
                links.link_url(
                    user_id=page.user_id, incident_id=incident.pk, action=action, nonce=nonce
                ),
            )
            for action in (LinkAction.ACKNOWLEDGE, LinkAction.RESOLVE, LinkAction.ESCALATE)
        ]
    return Message(
        title=f"[{severity}] #{incident.pk} {incident.title}",
        text=f"{incident.service} · level {page.level}",
        actions=(*signed, Action("Open", open_url)),
    )
