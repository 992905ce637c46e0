"""Two-way chat: incidents posted to Slack and Mattermost with buttons, the
message edited in place as the incident changes, buttons and /triage acting
as the linked triage user, and unverified requests refused.

Slack and Mattermost are played by tests/chat_server.py; the clients under
test (slack_sdk, requests) are the real ones.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.test import Client
from redis import Redis

from chat import services, tasks
from chat.models import ChatChannel, ChatIdentity, ChatMessage
from chat.transport import ChatUnavailable
from incidents.models import Incident, Service, Status
from paging.models import Rotation, RotationMember, Schedule
from tests.chat_helpers import (
    BASE_URL,
    COMMAND_TOKEN,
    button_press,
    slack_post,
    slack_signature,
    slash_command,
)
from tests.chat_server import ChatServer
from tests.factories import IncidentFactory, UserFactory, policy_with_levels

pytestmark = pytest.mark.django_db


@pytest.fixture
def paged_web(web: Service, alice: User) -> Service:
    web.escalation_policy = policy_with_levels((5, [alice]))
    web.save()
    return web


@pytest.fixture
def slack_channel(paged_web: Service) -> ChatChannel:
    return ChatChannel.objects.create(service=paged_web, provider="slack", channel_id="C0INCIDENTS")


@pytest.fixture
def mattermost_channel(paged_web: Service) -> ChatChannel:
    return ChatChannel.objects.create(
        service=paged_web, provider="mattermost", channel_id="4xp9fdt7pbgium38k5k6c95p6c"
    )


@pytest.fixture
def alice_in_slack(alice: User) -> ChatIdentity:
    return ChatIdentity.objects.create(
        provider="slack",
        chat_user_id="U0ALICE",
        chat_username="alice.s",
        user=alice,
        linked_by="link",
    )


def opened(service: Service, **kw: Any) -> Incident:
    incident: Incident = IncidentFactory(service=service, title="Checkout down", **kw)
    return incident


def page_level_one(incident: Incident) -> None:
    # What the worker does after the commit (tests without a worker run it here).
    from paging import escalation

    escalation.start(incident.pk)


def buttons(blocks: list[dict[str, Any]]) -> list[str]:
    return [
        element["text"]["text"]
        for block in blocks
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def shown(blocks: list[dict[str, Any]]) -> str:
    return " ".join(block["text"]["text"] for block in blocks if block["type"] == "section")


# --- posting and updating in place ------------------------------------------------------


def test_an_opened_incident_is_posted_with_buttons_then_edited_in_place(
    chat_api: ChatServer, slack_channel: ChatChannel, alice: User, alice_in_slack: ChatIdentity
) -> None:
    incident = opened(slack_channel.service, severity="critical")
    page_level_one(incident)

    assert tasks.sync_message(incident.pk, slack_channel.pk) == "posted"
    [posted] = chat_api.called("chat.postMessage")
    assert posted["channel"] == "C0INCIDENTS"
    assert posted["auth"] == "Bearer xoxb-test-bot-token"
    assert f"SEV1 · #{incident.pk} Checkout down" in shown(posted["blocks"])
    assert "Triggered" in shown(posted["blocks"])
    assert "Paged: alice" in shown(posted["blocks"])
    assert f"{BASE_URL}/incidents/{incident.pk}" in shown(posted["blocks"])
    assert buttons(posted["blocks"]) == ["Acknowledge", "Resolve", "Escalate"]
    message = ChatMessage.objects.get(incident=incident, channel=slack_channel)
    assert message.message_id.startswith("1700000000.")

    from incidents.services import acknowledge_incident

    acknowledge_incident(incident, actor=alice)
    assert tasks.sync_message(incident.pk, slack_channel.pk) == "updated"
    [update] = chat_api.called("chat.update")
    assert (update["channel"], update["ts"]) == ("C0INCIDENTS", message.message_id)
    assert "Acknowledged by @alice.s" in shown(update["blocks"])
    assert buttons(update["blocks"]) == ["Resolve", "Escalate"]
    assert len(chat_api.called("chat.postMessage")) == 1  # edited, not posted again


def test_a_change_queues_one_message_update_per_chat_channel_after_commit(
    chat_api: ChatServer,
    slack_channel: ChatChannel,
    mattermost_channel: ChatChannel,
    redis: Redis,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        incident = opened(slack_channel.service)
    queued = [json.loads(raw) for raw in redis.lrange("celery", 0, -1)]
    syncs = [
        m["headers"]["argsrepr"] for m in queued if m["headers"]["task"] == "chat.sync_message"
    ]
    # Opening, then level 1 paged: each queues one update per channel.
    assert sorted(syncs) == sorted(
        [f"({incident.pk}, {slack_channel.pk})", f"({incident.pk}, {mattermost_channel.pk})"] * 2
    )


def test_nothing_is_queued_while_chat_is_not_configured(
    slack_channel: ChatChannel, redis: Redis, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        opened(slack_channel.service)
    queued = [json.loads(raw)["headers"]["task"] for raw in redis.lrange("celery", 0, -1)]
    assert "chat.sync_message" not in queued


def test_an_unreachable_slack_leaves_nothing_half_done_and_the_retry_posts_once(
    chat_api: ChatServer, slack_channel: ChatChannel
) -> None:
    incident = opened(slack_channel.service)
    chat_api.fail_next = 1
    with pytest.raises(ChatUnavailable):
        services.sync_message(incident.pk, slack_channel.pk)
    assert ChatMessage.objects.get(incident=incident).message_id == ""
    assert services.sync_message(incident.pk, slack_channel.pk) == "posted"
    assert len(chat_api.called("chat.postMessage")) == 1
    assert tasks.sync_message.autoretry_for == (ChatUnavailable,)


def test_a_resolved_incident_keeps_its_message_without_buttons(
    chat_api: ChatServer, slack_channel: ChatChannel, alice: User
) -> None:
    from incidents.services import resolve_incident

    incident = opened(slack_channel.service)
    services.sync_message(incident.pk, slack_channel.pk)
    resolve_incident(incident, actor=alice)
    services.sync_message(incident.pk, slack_channel.pk)
    [update] = chat_api.called("chat.update")
    assert "Resolved by @alice" in shown(update["blocks"])
    assert buttons(update["blocks"]) == []


# --- Slack buttons ---------------------------------------------------------------------


def test_a_signed_button_press_by_a_linked_user_acknowledges_as_them(
    chat_api: ChatServer, client: Client, slack_channel: ChatChannel, alice_in_slack: ChatIdentity
) -> None:
    incident = opened(slack_channel.service)
    response = slack_post(
        client, "/chat/slack/interactions", button_press(incident.pk, "acknowledge")
    )
    assert response.status_code == 200
    incident.refresh_from_db()
    assert incident.status == Status.ACKNOWLEDGED
    assert incident.acknowledged_by == alice_in_slack.user
    assert incident.timeline.last().message == "by alice from Slack"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "how",
    ["unsigned", "wrong secret", "six minutes old", "signed for another body", "bad timestamp"],
)
def test_unverified_slack_requests_get_401_and_change_nothing(
    how: str,
    chat_api: ChatServer,
    client: Client,
    slack_channel: ChatChannel,
    alice_in_slack: ChatIdentity,
    redis: Redis,
) -> None:
    incident = opened(slack_channel.service)
    body = button_press(incident.pk, "resolve")
    path = "/chat/slack/interactions"
    if how == "unsigned":
        response = slack_post(client, path, body, signed=False)
    elif how == "wrong secret":
        response = slack_post(client, path, body, secret="not-the-signing-secret")
    elif how == "six minutes old":
        response = slack_post(client, path, body, age=6 * 60)
    elif how == "bad timestamp":
        response = client.post(
            path,
            data=body,
            content_type="application/x-www-form-urlencoded",
            headers={"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"},
        )
    else:
        # Headers Slack made for a harmless command, replayed with this body.
        timestamp = str(int(time.time()))
        response = client.post(
            path,
            data=body,
            content_type="application/x-www-form-urlencoded",
            headers={
                "X-Slack-Request-Timestamp": timestamp,
                "X-Slack-Signature": slack_signature(slash_command("oncall"), int(timestamp)),
            },
        )
    assert response.status_code == 401
    assert "Unverified Slack request" in response.content.decode()
    incident.refresh_from_db()
    assert incident.status == Status.TRIGGERED
    assert redis.llen("celery") == 0
    assert chat_api.calls == []


def test_slack_requests_are_refused_while_slack_is_not_set_up(
    client: Client, slack_channel: ChatChannel, alice_in_slack: ChatIdentity
) -> None:
    incident = opened(slack_channel.service)
    response = slack_post(client, "/chat/slack/interactions", button_press(incident.pk, "resolve"))
    assert response.status_code == 401
    assert "not set up" in response.json()["detail"]
    incident.refresh_from_db()
    assert incident.status == Status.TRIGGERED


def test_a_refused_press_is_answered_only_to_the_presser(
    chat_api: ChatServer,
    client: Client,
    slack_channel: ChatChannel,
    alice: User,
    alice_in_slack: ChatIdentity,
    redis: Redis,
) -> None:
    from incidents.services import resolve_incident

    incident = opened(slack_channel.service)
    resolve_incident(incident, actor=alice)
    response = slack_post(
        client, "/chat/slack/interactions", button_press(incident.pk, "acknowledge")
    )
    assert response.status_code == 200
    [queued] = [json.loads(raw)["headers"] for raw in redis.lrange("celery", 0, -1)]
    assert queued["task"] == "chat.slack_reply"
    tasks.slack_reply("C0INCIDENTS", "U0ALICE", "it cannot be acknowledged")
    [ephemeral] = chat_api.called("chat.postEphemeral")
    assert (ephemeral["channel"], ephemeral["user"]) == ("C0INCIDENTS", "U0ALICE")


def test_presses_that_are_not_triage_buttons_are_ignored(
    chat_api: ChatServer, client: Client, slack_channel: ChatChannel, alice_in_slack: ChatIdentity
) -> None:
    incident = opened(slack_channel.service)
    other = urlencode(
        {"payload": json.dumps({"type": "view_submission", "user": {"id": "U0ALICE"}})}
    )
    assert slack_post(client, "/chat/slack/interactions", other).status_code == 200
    odd_number = button_press(
        incident.pk, "acknowledge", value="\u00b2"
    )  # "²": isdigit() to Python
    assert slack_post(client, "/chat/slack/interactions", odd_number).status_code == 200
    broken = urlencode({"payload": "{not json"})
    assert slack_post(client, "/chat/slack/interactions", broken).status_code == 400
    incident.refresh_from_db()
    assert incident.status == Status.TRIGGERED


# --- linking ---------------------------------------------------------------------------


def test_an_unlinked_slack_user_gets_a_link_and_linking_makes_their_press_count(
    chat_api: ChatServer, client: Client, slack_channel: ChatChannel, redis: Redis
) -> None:
    bob = UserFactory(username="bob", email="bob@example.org")
    # Slack knows bob's address, but not as confirmed: it proves nothing.
    chat_api.slack_users["U0BOB"] = {
        "id": "U0BOB",
        "name": "bob",
        "is_email_confirmed": False,
        "profile": {"email": "bob@example.org"},
    }
    incident = opened(slack_channel.service)
    press = button_press(incident.pk, "acknowledge", user_id="U0BOB", username="bob")
    assert slack_post(client, "/chat/slack/interactions", press).status_code == 200
    incident.refresh_from_db()
    assert incident.status == Status.TRIGGERED
    [queued] = [json.loads(raw)["headers"] for raw in redis.lrange("celery", 0, -1)]
    assert queued["task"] == "chat.slack_unlinked"

    # What the worker does with it:
    assert (
        tasks.slack_unlinked(
            {"id": "U0BOB", "name": "bob"},
            "C0INCIDENTS",
            {"action": "acknowledge", "incident_id": incident.pk},
        )
        == "asked to link"
    )
    [answer] = chat_api.called("chat.postEphemeral")
    assert answer["user"] == "U0BOB"
    assert "triage does not know who you are yet" in answer["text"]
    link = answer["text"].split("Open ", 1)[1].split(" ", 1)[0]
    assert link.startswith(f"{BASE_URL}/chat/link/")
    path = link.removeprefix(BASE_URL)

    browser = Client()
    assert browser.get(path).status_code == 302  # log in first
    browser.force_login(bob)
    page = browser.get(path)
    assert "Link @bob to bob" in page.content.decode()
    assert not ChatIdentity.objects.exists()  # looking at the page links nothing
    done = browser.post(path)
    assert done.status_code == 200
    assert "now acts as <strong>bob</strong>" in done.content.decode()

    assert slack_post(client, "/chat/slack/interactions", press).status_code == 200
    incident.refresh_from_db()
    assert incident.status == Status.ACKNOWLEDGED
    assert incident.acknowledged_by == bob


def test_a_slack_user_with_a_confirmed_email_is_linked_by_it(
    chat_api: ChatServer, slack_channel: ChatChannel, alice: User
) -> None:
    alice.email = "Alice@Example.org"
    alice.save()
    chat_api.slack_users["U0ALICE"] = {
        "id": "U0ALICE",
        "name": "alice",
        "is_email_confirmed": True,
        "profile": {"email": "alice@example.org"},
    }
    incident = opened(slack_channel.service)
    outcome = tasks.slack_unlinked(
        {"id": "U0ALICE", "name": "alice"},
        "C0INCIDENTS",
        {"action": "acknowledge", "incident_id": incident.pk},
    )
    assert outcome == "acted"
    incident.refresh_from_db()
    assert incident.acknowledged_by == alice
    assert ChatIdentity.objects.get(chat_user_id="U0ALICE").linked_by == "email"
    [answer] = chat_api.called("chat.postEphemeral")
    assert answer["text"] == f"Acknowledged #{incident.pk} Checkout down as alice."


def test_a_tampered_or_foreign_link_explains_itself(
    chat_api: ChatServer, alice_client: Client, alice_in_slack: ChatIdentity
) -> None:
    tampered = alice_client.get("/chat/link/not-a-signed-link")
    assert tampered.status_code == 400
    assert "This link does not work" in tampered.content.decode()

    link = services.link_url(services.ChatUser("slack", "U0ALICE", "alice.s"))
    mallory = Client()
    mallory.force_login(UserFactory(username="mallory"))
    refused = mallory.post(link.removeprefix(BASE_URL))
    assert refused.status_code == 409
    assert "already acts as alice" in refused.content.decode()
    assert ChatIdentity.objects.get(chat_user_id="U0ALICE").user.username == "alice"


# --- Slack slash command ---------------------------------------------------------------


@pytest.fixture
def weekly_ops(alice: User) -> Schedule:
    schedule = Schedule.objects.create(name="Ops", slug="ops")
    rotation = Rotation.objects.create(
        schedule=schedule, name="primary", start=datetime(2026, 1, 5, 9, tzinfo=UTC)
    )
    RotationMember.objects.create(rotation=rotation, user=alice, position=0)
    return schedule


def test_slash_commands_acknowledge_resolve_and_say_who_is_on_call(
    chat_api: ChatServer,
    client: Client,
    slack_channel: ChatChannel,
    alice_in_slack: ChatIdentity,
    weekly_ops: Schedule,
) -> None:
    incident = opened(slack_channel.service)

    def run(text: str) -> dict[str, Any]:
        response = slack_post(client, "/chat/slack/commands", slash_command(text))
        assert response.status_code == 200
        return dict(response.json())

    acked = run(f"ack {incident.pk}")
    assert acked == {
        "response_type": "ephemeral",
        "text": f"Acknowledged #{incident.pk} Checkout down as alice.",
    }
    assert run(f"ack {incident.pk}")["text"].endswith("it cannot be acknowledged.")
    assert run(f"resolve #{incident.pk}")["text"].startswith(f"Resolved #{incident.pk}")
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED
    assert incident.timeline.last().message == "by alice from Slack"  # type: ignore[union-attr]
    assert run("ack 999999")["text"] == "There is no incident #999999."

    assert run("oncall")["text"] == "On call now:\nOps: alice"
    assert run("oncall ops")["text"] == "On call now:\nOps: alice"
    assert run("oncall nope")["text"] == "There is no schedule 'nope'. Schedules: ops."
    for nonsense in ("", "help", "ack", "ack forty-two", "resolve 1 2"):
        assert run(nonsense)["text"].startswith("Usage: `/triage ack 42`")


def test_an_unlinked_user_running_a_command_is_looked_up_in_the_worker(
    chat_api: ChatServer, client: Client, redis: Redis
) -> None:
    response = slack_post(client, "/chat/slack/commands", slash_command("oncall", user_id="U0NEW"))
    assert "Looking up your Slack account" in response.json()["text"]
    [queued] = [json.loads(raw)["headers"] for raw in redis.lrange("celery", 0, -1)]
    assert queued["task"] == "chat.slack_unlinked"
    bad = slack_post(client, "/chat/slack/commands", slash_command("oncall", user_id="U 1"))
    assert bad.status_code == 400


# --- Mattermost ------------------------------------------------------------------------


def mattermost_press(server: ChatServer, button_id: str, user_id: str, **override: Any) -> str:
    """What Mattermost posts when a button of triage's post is pressed: the
    button's server-side context, plus who pressed it."""
    post = server.called("POST posts")[-1]
    [button] = [a for a in post["props"]["attachments"][0]["actions"] if a["id"] == button_id]
    return json.dumps(
        {
            "user_id": user_id,
            "user_name": "alice",
            "channel_id": post["channel_id"],
            "channel_name": "incidents",
            "team_id": "teamid00000000000000000000",
            "team_domain": "example",
            "post_id": "post0000000000000000000001",
            "trigger_id": "trigger",
            "type": "",
            "data_source": "",
            "context": {**button["integration"]["context"], **override},
        }
    )


def test_mattermost_round_trip_by_verified_email(
    chat_api: ChatServer, client: Client, mattermost_channel: ChatChannel, alice: User
) -> None:
    alice.email = "alice@example.org"
    alice.save()
    chat_api.mattermost_users["aliceid0000000000000000000"] = {
        "id": "aliceid0000000000000000000",
        "username": "alice",
        "email": "alice@example.org",
        "email_verified": True,
        "delete_at": 0,
    }
    incident = opened(mattermost_channel.service)
    page_level_one(incident)
    assert services.sync_message(incident.pk, mattermost_channel.pk) == "posted"
    [post] = chat_api.called("POST posts")
    assert post["channel_id"] == "4xp9fdt7pbgium38k5k6c95p6c"
    assert post["auth"] == "Bearer mattermost-bot-token"
    attachment = post["props"]["attachments"][0]
    assert attachment["title"] == f"SEV2 · #{incident.pk} Checkout down"
    assert "**Triggered** · Paged: alice" in attachment["text"]
    assert [a["name"] for a in attachment["actions"]] == ["Acknowledge", "Resolve", "Escalate"]
    assert attachment["actions"][0]["integration"]["url"] == f"{BASE_URL}/chat/mattermost/actions"

    response = client.post(
        "/chat/mattermost/actions",
        data=mattermost_press(chat_api, "acknowledge", "aliceid0000000000000000000"),
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response.json() == {
        "ephemeral_text": f"Acknowledged #{incident.pk} Checkout down as alice."
    }
    incident.refresh_from_db()
    assert incident.acknowledged_by == alice
    assert incident.timeline.last().message == "by alice from Mattermost"  # type: ignore[union-attr]

    assert services.sync_message(incident.pk, mattermost_channel.pk) == "updated"
    [put] = chat_api.called("PUT posts")
    assert put["path_id"] == put["id"] == post_id(chat_api)
    assert "Acknowledged by @alice" in put["props"]["attachments"][0]["text"]


def post_id(server: ChatServer) -> str:
    return str(ChatMessage.objects.get().message_id)


@pytest.mark.parametrize(
    "how",
    ["another incident's token", "no context", "not json", "forged action", "action a list"],
)
def test_unverified_mattermost_presses_get_401_and_change_nothing(
    how: str, chat_api: ChatServer, client: Client, mattermost_channel: ChatChannel
) -> None:
    incident = opened(mattermost_channel.service)
    other = opened(mattermost_channel.service, dedup_key="other")
    services.sync_message(other.pk, mattermost_channel.pk)
    if how == "another incident's token":
        body = mattermost_press(chat_api, "resolve", "aliceid", incident=incident.pk)
    elif how == "forged action":
        body = mattermost_press(chat_api, "acknowledge", "aliceid", action="resolve")
    elif how == "no context":
        body = json.dumps({"user_id": "aliceid"})
    elif how == "action a list":  # hypothesis found this one a 500
        body = json.dumps({"user_id": "aliceid", "context": {"action": ["resolve"]}})
    else:
        body = "{"
    response = client.post("/chat/mattermost/actions", data=body, content_type="application/json")
    assert response.status_code == 401
    for each in (incident, other):
        each.refresh_from_db()
        assert each.status == Status.TRIGGERED
    assert chat_api.called("GET users") == []


def test_mattermost_slash_commands_need_the_command_token(
    chat_api: ChatServer,
    client: Client,
    mattermost_channel: ChatChannel,
    alice: User,
    weekly_ops: Schedule,
) -> None:
    ChatIdentity.objects.create(
        provider="mattermost",
        chat_user_id="aliceid",
        chat_username="alice",
        user=alice,
        linked_by="link",
    )
    incident = opened(mattermost_channel.service)

    def command(text: str, token: str = COMMAND_TOKEN, user_id: str = "aliceid") -> Any:
        body = {
            "channel_id": "4xp9fdt7pbgium38k5k6c95p6c",
            "channel_name": "incidents",
            "command": "/triage",
            "response_url": "https://chat.example.org/hooks/commands/abc",
            "team_domain": "example",
            "team_id": "teamid",
            "text": text,
            "token": token,
            "trigger_id": "trigger",
            "user_id": user_id,
            "user_name": "alice",
        }
        return client.post("/chat/mattermost/commands", data=body)

    for token in ("", "wrong-token", COMMAND_TOKEN[:-1]):
        refused = command(f"resolve {incident.pk}", token=token)
        assert refused.status_code == 401
    incident.refresh_from_db()
    assert incident.status == Status.TRIGGERED

    assert command(f"ack {incident.pk}").json()["text"].startswith(f"Acknowledged #{incident.pk}")
    assert command(f"resolve {incident.pk}").json()["text"].startswith(f"Resolved #{incident.pk}")
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED
    assert command("oncall").json()["text"] == "On call now:\nOps: alice"
    assert command("what").json()["text"].startswith("Usage:")

    # Someone Mattermost does not vouch for gets the linking answer.
    stranger = command("oncall", user_id="strangerid").json()["text"]
    assert "triage does not know who you are yet" in stranger
    assert f"{BASE_URL}/chat/link/" in stranger


def test_mattermost_being_down_while_checking_who_pressed_is_said_plainly(
    chat_api: ChatServer, client: Client, mattermost_channel: ChatChannel
) -> None:
    incident = opened(mattermost_channel.service)
    services.sync_message(incident.pk, mattermost_channel.pk)
    chat_api.fail_next = 1
    response = client.post(
        "/chat/mattermost/actions",
        data=mattermost_press(chat_api, "acknowledge", "aliceid"),
        content_type="application/json",
    )
    assert response.status_code == 200
    assert (
        "could not ask Mattermost who you are (Mattermost answered HTTP 503)"
        in (response.json()["ephemeral_text"])
    )
    incident.refresh_from_db()
    assert incident.status == Status.TRIGGERED


# --- admin and settings ----------------------------------------------------------------


def test_staff_give_a_service_a_chat_channel_in_the_admin(
    root: User, web: Service, alice_in_slack: ChatIdentity
) -> None:
    staff = Client()
    staff.force_login(root)
    for page in (
        "/admin/chat/chatchannel/",
        "/admin/chat/chatchannel/add/",
        "/admin/chat/chatmessage/",
        "/admin/chat/chatidentity/?q=alice",
        f"/admin/chat/chatidentity/{alice_in_slack.pk}/change/",
    ):
        assert staff.get(page).status_code == 200, page
    added = staff.post(
        "/admin/chat/chatchannel/add/",
        {"service": web.pk, "provider": "mattermost", "channel_id": "4xp9fdt7pbgium38k5k6c95p6c"},
    )
    assert added.status_code == 302
    assert ChatChannel.objects.get().service == web
    assert str(ChatChannel.objects.get()) == "Mattermost 4xp9fdt7pbgium38k5k6c95p6c (Web shop)"
    assert str(alice_in_slack) == "Slack @alice.s → alice"
    assert staff.get("/admin/chat/chatmessage/add/").status_code == 403


@pytest.mark.subprocess
def test_chat_secrets_can_come_from_mounted_files(tmp_path: Any) -> None:
    import subprocess
    import sys

    from tests.processes import ROOT, app_env

    token = tmp_path / "slack_bot_token"
    token.write_text("xoxb-from-a-file\n")
    env = app_env(SLACK_BOT_TOKEN_FILE=str(token), SLACK_SIGNING_SECRET="s")
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from chat import slack; from django.conf import settings; "
            "print(settings.SLACK_BOT_TOKEN, slack.enabled())",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.splitlines()[-1] == "xoxb-from-a-file True", result.stderr


def test_a_user_slack_does_not_know_is_asked_to_link_and_a_lost_answer_is_only_logged(
    chat_api: ChatServer, slack_channel: ChatChannel, caplog: pytest.LogCaptureFixture
) -> None:
    incident = opened(slack_channel.service)
    command = {"action": "acknowledge", "incident_id": incident.pk}
    assert tasks.slack_unlinked({"id": "U0GONE", "name": "x"}, "C0X", command) == "asked to link"
    chat_api.fail_next = 1
    tasks.slack_reply("C0X", "U0GONE", "hello")  # no exception: the worker moves on
    assert "could not answer in Slack: Slack refused the call: service_unavailable" in caplog.text


def test_slack_out_of_reach_is_a_plain_sentence(
    settings: Any, slack_channel: ChatChannel, outbound_loopback: Any
) -> None:
    from tests.processes import free_port

    settings.SLACK_SIGNING_SECRET, settings.SLACK_BOT_TOKEN = "s", "xoxb-x"
    settings.SLACK_API_URL = f"http://127.0.0.1:{free_port()}/api/"  # nobody listens
    incident = opened(slack_channel.service)
    with pytest.raises(ChatUnavailable, match=r"^Slack could not be reached: connection refused$"):
        services.sync_message(incident.pk, slack_channel.pk)


def test_a_chat_server_inside_the_network_is_refused_by_the_outbound_policy(
    chat_api: ChatServer, slack_channel: ChatChannel, outbound_loopback: Any
) -> None:
    # Slack's address (here the stand-in's) resolving to 127.0.0.1 is refused
    # like a contact method's unless staff allow it.
    outbound_loopback.delete()
    incident = opened(slack_channel.service)
    with pytest.raises(ChatUnavailable) as failure:
        services.sync_message(incident.pk, slack_channel.pk)
    assert str(failure.value) == "Slack: refused by triage's outbound policy"
    assert chat_api.called("chat.postMessage") == []
    assert ChatMessage.objects.get(incident=incident).message_id == ""  # nothing posted


def test_mattermost_out_of_reach_is_a_plain_sentence(
    chat_api: ChatServer, settings: Any, mattermost_channel: ChatChannel
) -> None:
    from tests.processes import free_port

    settings.MATTERMOST_URL = f"http://127.0.0.1:{free_port()}"  # nobody listens
    incident = opened(mattermost_channel.service)
    with pytest.raises(ChatUnavailable) as failure:
        services.sync_message(incident.pk, mattermost_channel.pk)
    assert str(failure.value) == "Mattermost could not be reached: connection refused"


@pytest.mark.django_db(transaction=True)
def test_two_updates_racing_for_a_new_incident_post_it_once(
    chat_api: ChatServer, web: Service
) -> None:
    import threading

    from django.db import connection

    channel = ChatChannel.objects.create(service=web, provider="slack", channel_id="C0INCIDENTS")
    incident = opened(web)
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def sync() -> None:
        try:
            start.wait(5)
            outcomes.append(services.sync_message(incident.pk, channel.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=sync) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["posted", "updated"]
    assert len(chat_api.called("chat.postMessage")) == 1
    [update] = chat_api.called("chat.update")
    assert update["ts"] == ChatMessage.objects.get().message_id


def test_an_alert_title_cannot_notify_the_whole_channel(
    chat_api: ChatServer, slack_channel: ChatChannel, mattermost_channel: ChatChannel
) -> None:
    incident = opened(slack_channel.service, dedup_key="x")
    incident.title = "<!channel> disk full, @all look"
    incident.save()
    services.sync_message(incident.pk, slack_channel.pk)
    services.sync_message(incident.pk, mattermost_channel.pk)
    [slack_post_call] = chat_api.called("chat.postMessage")
    assert "<!channel>" not in slack_post_call["text"] + shown(slack_post_call["blocks"])
    assert "&lt;!channel&gt; disk full" in shown(slack_post_call["blocks"])
    [mattermost_post] = chat_api.called("POST posts")
    attachment = mattermost_post["props"]["attachments"][0]
    for text in (mattermost_post["message"], attachment["title"], attachment["fallback"]):
        assert "@all" not in text
        assert "@\u200ball look" in text


def test_a_chat_user_linked_to_a_deactivated_account_acts_as_nobody(
    chat_api: ChatServer, client: Client, mattermost_channel: ChatChannel, alice: User
) -> None:
    ChatIdentity.objects.create(
        provider="mattermost", chat_user_id="aliceid", user=alice, linked_by="link"
    )
    alice.is_active = False
    alice.save()
    # Another account has the address Mattermost vouches for.
    UserFactory(username="alice2", email="alice@example.org")
    chat_api.mattermost_users["aliceid"] = {"email": "alice@example.org", "email_verified": True}
    incident = opened(mattermost_channel.service)
    services.sync_message(incident.pk, mattermost_channel.pk)
    response = client.post(
        "/chat/mattermost/actions",
        data=mattermost_press(chat_api, "acknowledge", "aliceid"),
        content_type="application/json",
    )
    assert response.status_code == 200
    assert "triage does not know who you are yet" in response.json()["ephemeral_text"]
    incident.refresh_from_db()
    assert incident.status == Status.TRIGGERED
