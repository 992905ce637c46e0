"""The notice sent when a post-mortem is published (apprise, through Celery)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from redis import Redis

from postmortems import notify, tasks
from postmortems.models import PostMortemStatus
from postmortems.services import change_postmortem_status
from tests.postmortem_factories import action_item, postmortem, published

# The receivers listen on 127.0.0.1, allowed here as staff would allow a LAN service.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("outbound_loopback")]


class Receiver:
    """A local HTTP server that records the JSON bodies posted to it."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def test_the_task_posts_the_notice_to_the_configured_url(receiver: Receiver, settings: Any) -> None:
    settings.POSTMORTEM_NOTIFY_URL = receiver.url
    pm = postmortem()
    action_item(pm, type="Alert")
    action_item(pm, type="Migration")
    published(pm)

    result = tasks.notify_postmortem_published.apply(args=[pm.pk])

    assert result.get() is True
    [body] = receiver.bodies
    assert body["title"] == f"Post-mortem published: {pm.title}"
    assert "2 follow-up action(s), 2 pending (1 safe to automate, 1 need review)" in body["message"]
    assert f"/postmortems/{pm.pk}" in body["message"]


def test_nothing_is_sent_when_the_url_is_empty_or_the_post_mortem_is_not_published(
    receiver: Receiver, settings: Any
) -> None:
    pm = postmortem()
    settings.POSTMORTEM_NOTIFY_URL = ""
    assert tasks.notify_postmortem_published.run(pm.pk) is False
    settings.POSTMORTEM_NOTIFY_URL = receiver.url
    assert tasks.notify_postmortem_published.run(pm.pk) is False  # still a draft
    assert tasks.notify_postmortem_published.run(999999) is False  # deleted meanwhile
    assert receiver.bodies == []


def test_a_refused_notice_raises_so_celery_retries(settings: Any) -> None:
    with Receiver(status=500) as failing:
        settings.POSTMORTEM_NOTIFY_URL = failing.url
        pm = published(postmortem())
        with pytest.raises(notify.NotifyFailed):
            notify.notify_published(pm.pk)
    assert tasks.notify_postmortem_published.autoretry_for == (notify.NotifyFailed,)
    assert tasks.notify_postmortem_published.acks_late is True


def test_a_url_apprise_does_not_understand_is_logged_not_retried(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.POSTMORTEM_NOTIFY_URL = "nonsense-scheme://x"
    pm = published(postmortem())
    assert notify.notify_published(pm.pk) is False
    assert "not a URL apprise understands" in caplog.text


TASK = "postmortems.tasks.notify_postmortem_published"


def queued_notices(redis: Redis) -> list[dict[str, Any]]:
    """The notices waiting in the Celery queue (the default "celery" list in Redis)."""
    messages = [json.loads(raw) for raw in redis.lrange("celery", 0, -1)]
    return [m for m in messages if m["headers"]["task"] == TASK]


def test_publishing_enqueues_the_notice_after_commit(
    settings: Any,
    redis: Redis,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.POSTMORTEM_NOTIFY_URL = "json://127.0.0.1:9/"
    pm = postmortem()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        change_postmortem_status(pm, PostMortemStatus.PUBLISHED, actor=None)
    assert queued_notices(redis) == []  # nothing before commit
    for callback in callbacks:
        callback()

    [message] = queued_notices(redis)
    assert message["headers"]["argsrepr"] == f"({pm.pk},)"


def test_publishing_enqueues_nothing_when_notices_are_off(
    settings: Any, redis: Redis, django_capture_on_commit_callbacks: Any
) -> None:
    settings.POSTMORTEM_NOTIFY_URL = ""
    with django_capture_on_commit_callbacks(execute=True):
        published(postmortem())
    assert queued_notices(redis) == []
