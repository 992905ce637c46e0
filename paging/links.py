"""Signed links that let a paged person act on the incident from the
notification itself, without logging in.

A link names one person, one incident and one action, and is signed with
the ``SECRET_KEY`` (``django.core.signing``, its own salt): changing any part
of it breaks the signature. It is refused when it is older than
``ACTION_LINK_MAX_AGE``, once its incident has been resolved since it was
sent, and once it has acted (``UsedActionLink``).

Opening a link (GET) only shows what it would do: mail and chat services
open links to scan them, and that must never acknowledge an incident. The
person's POST from that page acts, as them, "from a notification".

The payload is signed, not encrypted: whoever holds a link can read the
person's and the incident's ids from it, nothing more.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from incidents import services
from incidents.models import OPEN_STATUSES, TRANSITIONS, EventKind, Incident, Status
from paging.models import LinkAction, UsedActionLink

SALT = "triage.paging.action-link"
VIA = "a notification"

_ACT: dict[str, Callable[..., Incident]] = {
    LinkAction.ACKNOWLEDGE: services.acknowledge_incident,
    LinkAction.RESOLVE: services.resolve_incident,
    LinkAction.ESCALATE: services.escalate_incident,
}
# What the action does, for the page's sentences ("acknowledged").
DONE = {
    LinkAction.ACKNOWLEDGE: "acknowledged",
    LinkAction.RESOLVE: "resolved",
    LinkAction.ESCALATE: "escalated",
}


@dataclass(frozen=True)
class Link:
    """A link whose signature, age and incident check out; it may act."""

    user: User
    incident: Incident
    action: LinkAction
    nonce: str


@dataclass(frozen=True)
class Refusal:
    """Why a link does not work, in plain words for the person who opened it.

    ``incident_id`` is set only once the signature is known to be ours: a
    tampered or made-up link learns nothing about any incident.
    """

    status: int
    heading: str
    reason: str
    incident_id: int | None = None


class LinkUsed(Exception):
    """The link has acted already (possibly a moment ago, from another tap)."""


def new_nonce() -> str:
    """One per message: its three action links share it, each acts once."""
    return secrets.token_urlsafe(12)


def make_token(*, user_id: int, incident_id: int, action: str, nonce: str) -> str:
    payload = {"u": user_id, "i": incident_id, "a": action, "n": nonce, "t": int(time.time())}
    return signing.dumps(payload, salt=SALT)


def link_url(*, user_id: int, incident_id: int, action: str, nonce: str) -> str:
    token = make_token(user_id=user_id, incident_id=incident_id, action=action, nonce=nonce)
    return f"{settings.BASE_URL}{reverse('action-link', args=[token])}"


_INVALID = Refusal(
    400,
    "This link is not valid",
    "The link is incomplete or was changed. Copy the whole link from the notification, "
    "or open triage and act on the incident there.",
)


def _payload(token: str) -> dict[str, Any] | Refusal:
    try:
        payload = signing.loads(token, salt=SALT, max_age=settings.ACTION_LINK_MAX_AGE)
    except signing.SignatureExpired:
        hours = settings.ACTION_LINK_MAX_AGE / 3600
        return Refusal(
            410,
            "This link has expired",
            f"Links in a notification work for {hours:g} hours after it was sent. "
            "Open triage and act on the incident there.",
        )
    except signing.BadSignature:
        return _INVALID
    fields = {"u": int, "i": int, "a": str, "n": str, "t": int}
    if not isinstance(payload, dict) or any(
        not isinstance(payload.get(name), kind) for name, kind in fields.items()
    ):
        return _INVALID
    if payload["a"] not in LinkAction.values:
        return _INVALID
    return payload


def read(token: str) -> Link | Refusal:
    """The link behind ``token``, or why it cannot act. Changes nothing."""
    payload = _payload(token)
    if isinstance(payload, Refusal):
        return payload
    incident_id = payload["i"]
    incident = Incident.objects.select_related("service").filter(pk=incident_id).first()
    user = User.objects.filter(pk=payload["u"], is_active=True).first()
    if incident is None or user is None:
        return Refusal(
            410,
            "This link no longer works",
            "The incident or the person it was sent to is no longer in triage.",
        )
    sent_at = datetime.fromtimestamp(payload["t"], tz=UTC)
    # Resolved now, or resolved since the link was sent and reopened: a
    # reopened incident pages again, with new links.
    if incident.timeline.filter(kind=EventKind.RESOLVED, created_at__gte=sent_at).exists():
        return Refusal(
            410,
            "This incident was resolved",
            f"Incident #{incident_id} was resolved after this notification was sent, so its "
            "links no longer work. Open triage to see where it stands.",
            incident_id,
        )
    used = UsedActionLink.objects.filter(nonce=payload["n"], action=payload["a"]).first()
    if used is not None:
        return _used(payload["a"], incident_id, used.used_at)
    return Link(user=user, incident=incident, action=LinkAction(payload["a"]), nonce=payload["n"])


def _used(action: str, incident_id: int, at: datetime | None) -> Refusal:
    when = f" at {timezone.localtime(at):%H:%M %Z}" if at else ""
    return Refusal(
        410,
        "This link was already used",
        f"This {LinkAction(action).label.lower()} link already did its work{when}; each link "
        "in a notification works once. Open triage to see where the incident stands.",
        incident_id,
    )


def can_act(link: Link) -> bool:
    """Whether the action still makes sense for the incident as it is now."""
    status = link.incident.status
    if link.action == LinkAction.ESCALATE:
        return status in OPEN_STATUSES
    target = Status.ACKNOWLEDGED if link.action == LinkAction.ACKNOWLEDGE else Status.RESOLVED
    return target in TRANSITIONS[status]


def use(link: Link, *, now: datetime | None = None) -> Incident:
    """Act on the incident as the link's person, "from a notification".

    Raises ``LinkUsed`` when the link has acted already, and the incident
    services' ``InvalidTransition`` / ``NoEscalationPolicy`` when the action
    no longer fits; in those cases nothing changes and the link stays usable.

    Concurrency: the used-link row and the incident change commit together.
    Two POSTs of one link race on ``UsedActionLink``'s unique constraint; the
    loser waits for the winner's transaction and gets ``LinkUsed``.
    """
    now = now or timezone.now()
    with transaction.atomic():
        try:
            with transaction.atomic():
                UsedActionLink.objects.create(
                    nonce=link.nonce,
                    action=link.action,
                    incident=link.incident,
                    user=link.user,
                    used_at=now,
                )
        except IntegrityError as exc:
            raise LinkUsed from exc
        return _ACT[link.action](link.incident, actor=link.user, now=now, via=VIA)


def used_refusal(link: Link) -> Refusal:
    """What to say when the link acted between reading it and using it."""
    return _used(link.action, link.incident.pk, None)
