"""The one door every outbound call to Slack or Mattermost goes through.

Both clients (``slack_sdk``'s WebClient and ``requests`` for Mattermost) are
only ever called inside ``send``, which runs them under triage's outbound
policy (``triage.outbound``): a Slack or Mattermost address that resolves
inside the network is refused unless staff allow it, like a contact method.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import requests
from slack_sdk.errors import SlackApiError, SlackClientError

from triage import outbound

T = TypeVar("T")


class ChatUnavailable(Exception):
    """The chat service could not be reached or refused the call; worth retrying
    (posting tasks do) and worth a plain sentence (people see it)."""


class ChatNotFound(ChatUnavailable):
    """The chat service says the thing asked for (a user, a post) does not exist."""


_NOT_FOUND = {"user_not_found", "users_not_found", "message_not_found", "channel_not_found"}


def _reason(exc: BaseException) -> str:
    """The root cause in words ("connection refused", "timed out"), found
    beneath the wrapping layers of urllib, requests and urllib3."""
    todo, seen = [exc], set()
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror[:1].lower() + current.strerror[1:]
        linked = [getattr(current, "reason", None), current.__cause__, current.__context__]
        todo += [e for e in [*linked, *current.args] if isinstance(e, BaseException)]
    return str(exc)


def send(service: str, call: Callable[[], T]) -> T:
    """Make one outbound call to ``service`` (for messages: "Slack",
    "Mattermost") under the outbound policy; any transport or API failure is
    ChatUnavailable, a refused address says only that it was refused."""
    with outbound.guarded() as attempt:
        try:
            return _translated(service, call)
        except ChatUnavailable as exc:
            if attempt.refused:
                raise ChatUnavailable(f"{service}: {outbound.REFUSED}") from exc
            raise


def _translated(service: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown_error") if exc.response else "unknown_error"
        if error in _NOT_FOUND:
            raise ChatNotFound(f"Slack says {error}") from exc
        raise ChatUnavailable(f"Slack refused the call: {error}") from exc
    except SlackClientError as exc:
        raise ChatUnavailable(f"Slack could not be reached: {_reason(exc)}") from exc
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        if status == 404:
            raise ChatNotFound("Mattermost answered HTTP 404") from exc
        raise ChatUnavailable(f"Mattermost answered HTTP {status}") from exc
    except (requests.RequestException, OSError) as exc:
        raise ChatUnavailable(f"{service} could not be reached: {_reason(exc)}") from exc
