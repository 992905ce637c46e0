"""The endpoints Slack and Mattermost call (buttons and the slash command),
and the page that links a chat account to a triage account.

The machine endpoints are CSRF-exempt: their authenticity is the vendor's
signature or token, checked before anything is read or written; anything
unverified gets a 401 and changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any, cast

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from chat import mattermost, services, slack, tasks
from chat.models import Provider
from chat.render import ACTIONS
from chat.services import ChatUser, Command
from chat.transport import ChatUnavailable
from triage import jsonbody
from triage.http import problem

_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_NUMBER = re.compile(r"[0-9]{1,12}")  # an incident number (ASCII digits only)
MAX_BODY = 64 * 1024  # Slack and Mattermost send a few KB


def _unverified(provider: str) -> JsonResponse:
    name = Provider(provider).label
    if not services.enabled(provider):
        detail = f"{name} is not set up on this triage instance."
    elif provider == Provider.SLACK:
        detail = "The request is not signed with this app's signing secret, or is too old."
    else:
        detail = "The request does not carry this integration's token."
    return problem(401, f"Unverified {name} request", detail)


def _too_large(request: HttpRequest) -> bool:
    try:
        return int(request.headers.get("Content-Length") or 0) > MAX_BODY
    except ValueError:
        return True


def _ephemeral(text: str) -> JsonResponse:
    return JsonResponse({"response_type": "ephemeral", "text": text})


def _chat_user(provider: str, user_id: Any, name: Any) -> ChatUser | None:
    if not isinstance(user_id, str) or not _ID.fullmatch(user_id):
        return None
    return ChatUser(provider, user_id, name if isinstance(name, str) else "")


# --- Slack ---------------------------------------------------------------------------


def _slack_verified(request: HttpRequest) -> bool:
    return not _too_large(request) and slack.verified(request.body, request.headers)


def _slack_command(payload: dict[str, Any]) -> tuple[ChatUser, str, Command] | None:
    """The user, channel and action of a button press; None when it is not ours."""
    actions = payload.get("actions")
    user, channel = payload.get("user"), payload.get("channel")
    if payload.get("type") != "block_actions" or not isinstance(actions, list) or not actions:
        return None
    if not isinstance(user, dict) or not isinstance(channel, dict):
        return None
    action = actions[0] if isinstance(actions[0], dict) else {}
    name = str(action.get("action_id", "")).removeprefix("triage_")
    value = str(action.get("value", ""))
    chat_user = _chat_user(Provider.SLACK, user.get("id"), user.get("username"))
    channel_id = channel.get("id")
    if name not in ACTIONS or not _NUMBER.fullmatch(value) or chat_user is None:
        return None
    if not isinstance(channel_id, str) or not _ID.fullmatch(channel_id):
        return None
    return chat_user, channel_id, Command(name, incident_id=int(value))


@csrf_exempt
@require_POST
def slack_interactions(request: HttpRequest) -> HttpResponse:
    if not _slack_verified(request):
        return _unverified(Provider.SLACK)
    try:
        payload = jsonbody.loads(request.POST.get("payload", ""))
    except ValueError:
        return problem(400, "Bad Slack payload", "The payload field is not JSON.")
    press = _slack_command(payload) if isinstance(payload, dict) else None
    if press is None:
        return HttpResponse(status=200)  # not a triage button: nothing to do
    chat_user, channel, command = press
    person = services.identity(chat_user)
    if person is None:
        tasks.slack_unlinked.delay(
            {"id": chat_user.user_id, "name": chat_user.username}, channel, asdict(command)
        )
        return HttpResponse(status=200)
    answer = services.run_command(person, command, provider=Provider.SLACK)
    if not answer.done:
        # A refusal (already resolved...): only the presser hears about it.
        tasks.slack_reply.delay(channel, chat_user.user_id, answer.text)
    # Success shows as the message itself changing (queued by the change).
    return HttpResponse(status=200)


@csrf_exempt
@require_POST
def slack_commands(request: HttpRequest) -> HttpResponse:
    if not _slack_verified(request):
        return _unverified(Provider.SLACK)
    command = services.parse_command(request.POST.get("text", ""))
    if not command.action:
        return _ephemeral(services.USAGE)
    chat_user = _chat_user(
        Provider.SLACK, request.POST.get("user_id"), request.POST.get("user_name")
    )
    channel = request.POST.get("channel_id", "")
    if chat_user is None or not _ID.fullmatch(channel):
        return problem(400, "Bad slash command", "user_id and channel_id are required.")
    person = services.identity(chat_user)
    if person is None:
        tasks.slack_unlinked.delay(
            {"id": chat_user.user_id, "name": chat_user.username}, channel, asdict(command)
        )
        return _ephemeral("Looking up your Slack account's verified email in triage…")
    return _ephemeral(services.run_command(person, command, provider=Provider.SLACK).text)


# --- Mattermost ----------------------------------------------------------------------


def _mattermost_person(chat_user: ChatUser) -> tuple[User | None, str]:
    """The linked triage user, or None and what to tell the chat user."""
    person = services.identity(chat_user)
    if person is not None:
        return person, ""
    try:
        person = services.link_by_email(chat_user)
    except ChatUnavailable as exc:
        return None, f"triage could not ask Mattermost who you are ({exc}); try again."
    if person is None:
        return None, services.linking_answer(chat_user)
    return person, ""


@csrf_exempt
@require_POST
def mattermost_actions(request: HttpRequest) -> HttpResponse:
    try:
        body = jsonbody.loads(request.body) if not _too_large(request) else None
    except ValueError:
        body = None
    context = body.get("context") if isinstance(body, dict) else None
    if not isinstance(body, dict) or not isinstance(context, dict):
        return _unverified(Provider.MATTERMOST)
    action, incident = context.get("action"), context.get("incident")
    token = context.get("token")
    if (
        not isinstance(action, str)  # a list or an object cannot even be looked up
        or action not in ACTIONS
        or not isinstance(incident, int)
        or not isinstance(token, str)
        or not mattermost.action_verified(incident, str(action), token)
    ):
        return _unverified(Provider.MATTERMOST)
    chat_user = _chat_user(Provider.MATTERMOST, body.get("user_id"), body.get("user_name"))
    if chat_user is None:
        return problem(400, "Bad Mattermost action", "user_id is required.")
    person, why = _mattermost_person(chat_user)
    if person is None:
        return JsonResponse({"ephemeral_text": why})
    answer = services.act(person, str(action), incident, provider=Provider.MATTERMOST)
    return JsonResponse({"ephemeral_text": answer.text})


@csrf_exempt
@require_POST
def mattermost_commands(request: HttpRequest) -> HttpResponse:
    if _too_large(request) or not mattermost.command_verified(request.POST.get("token", "")):
        return _unverified(Provider.MATTERMOST)
    command = services.parse_command(request.POST.get("text", ""))
    if not command.action:
        return _ephemeral(services.USAGE)
    chat_user = _chat_user(
        Provider.MATTERMOST, request.POST.get("user_id"), request.POST.get("user_name")
    )
    if chat_user is None:
        return problem(400, "Bad slash command", "user_id is required.")
    person, why = _mattermost_person(chat_user)
    if person is None:
        return _ephemeral(why)
    return _ephemeral(services.run_command(person, command, provider=Provider.MATTERMOST).text)


# --- linking -------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def link(request: HttpRequest, token: str) -> HttpResponse:
    """Bind the chat account a linking link was made for to the logged-in person.

    GET only shows what would happen (link scanners must not link anything).
    """
    chat_user = services.read_link(token)
    if chat_user is None:
        return render(
            request,
            "chat/link.html",
            {"broken": True, "max_minutes": services.LINK_MAX_AGE // 60},
            status=400,
        )
    context: dict[str, Any] = {
        "chat_user": chat_user,
        "provider": Provider(chat_user.provider).label,
    }
    if request.method == "POST":
        try:
            services.bind(chat_user, cast(User, request.user), linked_by="link")
        except services.AlreadyLinked as exc:
            return render(request, "chat/link.html", {**context, "refused": str(exc)}, status=409)
        return render(request, "chat/link.html", {**context, "linked": True})
    return render(request, "chat/link.html", context)
