"""Chat's business rules: posting and updating an incident's message, linking
chat users to triage users, and acting on buttons and slash commands.

Views and tasks are thin adapters over these. Changes to incidents go
through ``incidents.services`` with ``via="Slack"`` / ``via="Mattermost"``,
so the timeline says "by alice from Slack".
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from chat import mattermost, render, slack
from chat.models import ChatChannel, ChatIdentity, ChatMessage, Provider
from incidents import services as incident_services
from incidents.models import Incident
from paging import oncall
from paging.models import Schedule
from triage.errors import DomainError

logger = logging.getLogger(__name__)

LINK_SALT = "chat.link"
LINK_MAX_AGE = 3600  # seconds a linking link stays usable


def enabled(provider: str) -> bool:
    return slack.enabled() if provider == Provider.SLACK else mattermost.enabled()


def any_enabled() -> bool:
    return slack.enabled() or mattermost.enabled()


# --- posting ---------------------------------------------------------------------------


def channels_for(incident_id: int) -> list[int]:
    """The chat channels of the incident's service whose provider is configured."""
    providers = [p for p in Provider.values if enabled(p)]
    return list(
        ChatChannel.objects.filter(
            service__incidents=incident_id, provider__in=providers
        ).values_list("pk", flat=True)
    )


def sync_message(incident_id: int, channel_id: int) -> str:
    """Make the incident's message in the channel show its current state.

    Posts it the first time, edits it in place afterwards. Returns "posted",
    "updated" or "gone". Raises ``ChatUnavailable`` when the chat service
    cannot be reached (the task retries).

    Concurrency: every change queues one call, and calls for the same
    incident and channel may run at once on different workers. Each takes
    the ChatMessage row's lock (the unique (channel, incident) index makes
    the row exist once) and reads the incident only after holding it, so
    they run one after another and the last one writes the latest state;
    the second of two racing first calls finds the message id and edits
    instead of posting again. The lock is held across the HTTP call, which
    is bounded by CHAT_TIMEOUT.
    """
    channel = ChatChannel.objects.filter(pk=channel_id).first()
    if channel is None or not Incident.objects.filter(pk=incident_id).exists():
        return "gone"
    # get_or_create re-reads the row when a racing call inserted it first.
    ChatMessage.objects.get_or_create(channel=channel, incident_id=incident_id)
    with transaction.atomic():
        message = ChatMessage.objects.select_for_update().get(
            channel=channel, incident_id=incident_id
        )
        incident = Incident.objects.select_related("service", "acknowledged_by", "resolved_by").get(
            pk=incident_id
        )
        text, rich = render.for_provider(incident, channel.provider)
        now = timezone.now()
        if channel.provider == Provider.SLACK:
            if message.message_id:
                slack.update_message(message.message_channel, message.message_id, text, rich)
            else:
                message.message_channel, message.message_id = slack.post_message(
                    channel.channel_id, text, rich
                )
        elif message.message_id:
            mattermost.update_post(message.message_id, text, rich)
        else:
            message.message_channel = channel.channel_id
            message.message_id = mattermost.create_post(channel.channel_id, text, rich)
        outcome = "updated" if message.posted_at else "posted"
        message.posted_at = message.posted_at or now
        message.updated_at = now
        message.save()
    return outcome


# --- who is who ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatUser:
    provider: str
    user_id: str
    username: str


def identity(chat_user: ChatUser) -> User | None:
    found = (
        ChatIdentity.objects.select_related("user")
        .filter(provider=chat_user.provider, chat_user_id=chat_user.user_id, user__is_active=True)
        .first()
    )
    return found.user if found else None


def link_by_email(chat_user: ChatUser) -> User | None:
    """Link the chat user to the one active triage user with their verified email.

    Asks the chat service (``users.info`` / ``GET /users/{id}``); nothing is
    linked when the address is not verified there, or matches nobody or more
    than one person in triage.
    """
    lookup = (
        slack.verified_email
        if chat_user.provider == Provider.SLACK
        else (mattermost.verified_email)
    )
    email = lookup(chat_user.user_id)
    if not email:
        return None
    matches = list(User.objects.filter(email__iexact=email, is_active=True)[:2])
    if len(matches) != 1:
        return None
    try:
        return bind(chat_user, matches[0], linked_by="email")
    except AlreadyLinked:
        return None  # linked to an account that was deactivated since: staff decide


class AlreadyLinked(Exception):
    pass


def bind(chat_user: ChatUser, user: User, *, linked_by: str) -> User:
    """Bind the chat user to ``user``; ``AlreadyLinked`` if they act as someone else.

    The unique (provider, chat user) index settles two links racing.
    """
    try:
        with transaction.atomic():
            ChatIdentity.objects.create(
                provider=chat_user.provider,
                chat_user_id=chat_user.user_id,
                chat_username=chat_user.username,
                user=user,
                linked_by=linked_by,
            )
    except IntegrityError:
        existing = ChatIdentity.objects.select_related("user").get(
            provider=chat_user.provider, chat_user_id=chat_user.user_id
        )
        if existing.user_id != user.pk:
            raise AlreadyLinked(
                f"This {existing.get_provider_display()} account already acts as "
                f"{existing.user.get_username()} in triage."
            ) from None
    return user


def link_url(chat_user: ChatUser) -> str:
    token = signing.dumps(
        {"p": chat_user.provider, "u": chat_user.user_id, "n": chat_user.username},
        salt=LINK_SALT,
        compress=True,
    )
    return settings.BASE_URL + reverse("chat-link", args=[token])


def read_link(token: str) -> ChatUser | None:
    """The chat user a linking link was made for; None when tampered or expired."""
    try:
        data = signing.loads(token, salt=LINK_SALT, max_age=LINK_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("p") not in Provider.values:
        return None  # pragma: no cover - only this module signs with this salt
    return ChatUser(str(data["p"]), str(data["u"]), str(data.get("n", "")))


def linking_answer(chat_user: ChatUser) -> str:
    name = Provider(chat_user.provider).label
    return (
        f"triage does not know who you are yet. Open {link_url(chat_user)} (logged in to "
        f"triage) to link this {name} account to yours, then try again. The link works "
        f"for {LINK_MAX_AGE // 60} minutes."
    )


# --- acting ----------------------------------------------------------------------------

_VERBS = {"acknowledge": "Acknowledged", "resolve": "Resolved", "escalate": "Escalated"}


@dataclass(frozen=True)
class Answer:
    text: str
    done: bool  # False: refused (no such incident, not in a state for it)


def act(user: User, action: str, incident_id: int, *, provider: str) -> Answer:
    """Acknowledge, resolve or escalate as ``user``, saying what happened."""
    via = Provider(provider).label
    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is None:
        return Answer(f"There is no incident #{incident_id}.", done=False)
    try:
        if action == "acknowledge":
            incident_services.acknowledge_incident(incident, actor=user, via=via)
        elif action == "resolve":
            incident_services.resolve_incident(incident, actor=user, via=via)
        else:
            incident_services.escalate_incident(incident, actor=user, via=via)
    except DomainError as exc:
        return Answer(exc.detail, done=False)
    verb = _VERBS[action]
    return Answer(f"{verb} #{incident.pk} {incident.title} as {user.get_username()}.", done=True)


USAGE = (
    "Usage: `/triage ack 42` acknowledges incident #42, `/triage resolve 42` resolves it, "
    "`/triage oncall` says who is on call now (`/triage oncall primary` for one schedule)."
)
_COMMANDS = {
    "ack": "acknowledge",
    "acknowledge": "acknowledge",
    "resolve": "resolve",
    "escalate": "escalate",
}


@dataclass(frozen=True)
class Command:
    action: str  # acknowledge, resolve, escalate, oncall, or "" (usage)
    incident_id: int = 0
    schedule: str = ""


def parse_command(text: str) -> Command:
    words = text.split()
    verb = words[0].lower() if words else ""
    if verb in _COMMANDS and len(words) == 2 and re.fullmatch(r"#?\d{1,12}", words[1]):
        return Command(_COMMANDS[verb], incident_id=int(words[1].lstrip("#")))
    if verb == "oncall" and len(words) <= 2:
        return Command("oncall", schedule=words[1] if len(words) == 2 else "")
    return Command("")


def run_command(user: User, command: Command, *, provider: str) -> Answer:
    if command.action == "oncall":
        return Answer(who_is_on_call(command.schedule), done=True)
    if command.action:
        return act(user, command.action, command.incident_id, provider=provider)
    return Answer(USAGE, done=False)


def who_is_on_call(slug: str = "") -> str:
    now = timezone.now()
    schedules = Schedule.objects.all()
    if slug:
        schedules = schedules.filter(slug=slug)
    lines = []
    for schedule in schedules:
        people = ", ".join(u.get_username() for u in oncall.who_is_on_call(schedule, at=now))
        lines.append(f"{schedule.name}: {people or 'nobody'}")
    if not lines:
        known = ", ".join(Schedule.objects.values_list("slug", flat=True)) or "none yet"
        return (
            f"There is no schedule {slug!r}. Schedules: {known}."
            if slug
            else "There are no on-call schedules yet."
        )
    return "On call now:\n" + "\n".join(lines)
