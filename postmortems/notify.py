"""The notice sent when a post-mortem is published, through apprise.

``POSTMORTEM_NOTIFY_URL`` is any apprise URL (``slack://…``, ``ntfy://…``,
``mailto://…``, ``json://host/path`` for a plain JSON webhook); empty turns
the notice off. It obeys triage's outbound policy (``triage.outbound``) like
every contact method.
"""

from __future__ import annotations

import logging

import apprise
from django.conf import settings

from postmortems import selectors
from postmortems.models import PostMortemStatus
from triage import outbound

logger = logging.getLogger(__name__)


class NotifyFailed(Exception):
    """The channel refused or could not be reached; worth retrying."""


def publication_message(post_mortem_id: int) -> tuple[str, str] | None:
    """(title, body) of the notice, or None when there is nothing to announce
    (the post-mortem is gone or no longer published: a stale task)."""
    post_mortem = selectors.postmortem_or_none(post_mortem_id)
    if post_mortem is None or post_mortem.status != PostMortemStatus.PUBLISHED:
        return None
    items = selectors.action_items(post_mortem)
    pending = [item for item in items if item.is_pending]
    safe = sum(item.safe for item in pending)
    title = f"Post-mortem published: {post_mortem.title}"
    body = "\n".join(
        [
            f"Incident #{post_mortem.incident_id} · {post_mortem.affected_services}",
            f"{len(items)} follow-up action(s), {len(pending)} pending "
            f"({safe} safe to automate, {len(pending) - safe} need review).",
            settings.BASE_URL + post_mortem.get_absolute_url(),
        ]
    )
    return title, body


def send(url: str, title: str, body: str) -> bool:
    """Send under the outbound policy; False for a URL apprise does not
    understand or the policy refuses (retrying would not change that)."""
    if not apprise.Apprise().add(url):
        logger.error("POSTMORTEM_NOTIFY_URL is not a URL apprise understands; nothing sent")
        return False
    delivery = outbound.send_apprise(url, title=title, body=body)
    if delivery.reason == outbound.REFUSED:
        logger.error(
            "POSTMORTEM_NOTIFY_URL is refused by triage's outbound policy; nothing sent "
            "(allow its host with OUTBOUND_ALLOW or an outbound allow rule in the admin)"
        )
        return False
    if not delivery.ok:
        raise NotifyFailed(f"the notice was not delivered: {delivery.reason}")
    return True


def notify_published(post_mortem_id: int) -> bool:
    """Announce a publication; True when a notice went out."""
    url = settings.POSTMORTEM_NOTIFY_URL
    if not url:
        return False
    message = publication_message(post_mortem_id)
    if message is None:
        return False
    return send(url, *message)
