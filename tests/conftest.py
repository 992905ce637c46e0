from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django_redis import get_redis_connection
from redis import Redis
from time_machine import TimeMachineFixture
from whitenoise.middleware import WhiteNoiseMiddleware

from accounts.tokens import NewToken, create_api_token
from incidents.models import Service
from tests.chat_helpers import chat_env
from tests.chat_server import ChatServer, chat_server
from tests.factories import ServiceFactory, UserFactory
from triage import readmodel
from triage.models import OutboundAllowRule


def pytest_configure(config: pytest.Config) -> None:
    # Playwright's sync API keeps an asyncio loop running in the main thread for
    # as long as the browser lives (the whole session), and Django refuses
    # synchronous ORM calls whenever a loop is running. triage has no async
    # code for that check to protect, so the tests switch it off.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"


QUICK_HASHER = "django.contrib.auth.hashers.MD5PasswordHasher"

# --- WhiteNoise's file scan, once per test process ---------------------------
#
# Django's test client builds its middleware afresh for every Client (every
# test, often several per test), and WhiteNoiseMiddleware's constructor walks
# STATIC_ROOT and builds headers for each of its ~700 files (hashed copies and
# their .gz/.br variants): ~0.1 s of CPU per client, about half of what the
# tests that make requests cost in all. The result depends only on the
# folder's files and on the settings read below, so it is computed once per
# (folder, settings) and copied into each new middleware. A test that changes
# one of those settings, or the folder (its modification time, or the
# manifest's, moves), gets a scan of its own, as before. Served responses are
# built per request from the shared StaticFile objects, which hold paths and
# headers only. Subprocesses (gunicorn, workers) do not load this file: they
# scan once per process as in production.
_scan_files = WhiteNoiseMiddleware.update_files_dictionary
_scanned: dict[tuple[object, ...], dict[str, Any]] = {}


def _folder_version(root: str) -> tuple[int, ...]:
    stamps = []
    for path in (root, os.path.join(root, "staticfiles.json")):
        with contextlib.suppress(OSError):
            stamps.append(os.stat(path).st_mtime_ns)
    return tuple(stamps)


def _scan_files_once(self: WhiteNoiseMiddleware, root: str, prefix: str) -> None:
    key = (
        root,
        prefix,
        type(self),
        _folder_version(root),
        *(
            repr(getattr(settings, name, None))
            for name in ("DEBUG", "STATIC_URL", "STATIC_ROOT", "STORAGES", "FORCE_SCRIPT_NAME")
        ),
        *(
            repr((name, getattr(settings, name)))
            for name in dir(settings)
            if name.startswith("WHITENOISE_")
        ),
    )
    found = _scanned.get(key)
    if found is None:
        into, self.files = self.files, {}
        try:
            _scan_files(self, root, prefix)
            found = self.files
        finally:
            self.files = into
        _scanned[key] = found
    self.files.update(found)


WhiteNoiseMiddleware.update_files_dictionary = _scan_files_once  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _quick_passwords(request: pytest.FixtureRequest) -> Iterator[None]:
    """A cheap hasher first: a PBKDF2 hash or check costs ~0.3-1 s of CPU and
    many tests log in through the form, set passwords or create admins; what
    they assert does not depend on the hash's cost. The real hashers stay
    listed, so a PBKDF2 hash still verifies. Tests marked ``slow`` keep the
    production list: the processes they start (gunicorn, workers) read the
    real settings and must be able to check a password the test stored."""
    if request.node.get_closest_marker("slow"):
        yield
        return
    with override_settings(PASSWORD_HASHERS=[QUICK_HASHER, *settings.PASSWORD_HASHERS]):
        yield


@pytest.fixture(autouse=True)
def _fresh_read_model() -> None:
    """Versions of "what is open" and of the settings the dashboard shows
    that no earlier test cached anything under: the database starts empty
    again, Redis keeps the cached dashboards."""
    readmodel.bump_settings()


# tryfirst: pytest-xdist reads the groups in its own hook of the same name.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under `--dist loadgroup` (the whole suite), the tests that start real
    processes (servers, workers, beat, the run command) run one after another
    on one xdist worker, as they did before the suite ran in parallel: several
    of them hold timings (a restart caught up within seconds, no request slower
    than 5 s) that would only measure how crowded the CPU is if four stacks
    started at once. The browser tests share one worker and so one Chromium.
    Every other test is spread over the remaining workers."""
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.xdist_group("processes"))
        elif item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.xdist_group("browser"))


@pytest.fixture
def redis() -> Iterator[Redis]:
    """The real Redis the app uses, emptied before the test."""
    client: Redis = get_redis_connection("default")
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def redis_unreachable(settings: Any) -> None:
    """Every cache alias (the sessions' too) pointed where nothing listens,
    failing fast: Redis down for the rest of the test."""
    settings.CACHES = {
        alias: {
            **config,
            "LOCATION": "redis://127.0.0.1:9/0",
            "OPTIONS": {
                **config.get("OPTIONS", {}),
                "SOCKET_CONNECT_TIMEOUT": 0.1,
                "SOCKET_TIMEOUT": 0.1,
            },
        }
        for alias, config in settings.CACHES.items()
    }


@pytest.fixture
def alice(db: None) -> User:
    """A responder: logged in, not staff."""
    return UserFactory(username="alice")


@pytest.fixture
def root(db: None) -> User:
    """Staff with every permission, for the admin."""
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def alice_client(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def web(db: None) -> Service:
    return ServiceFactory(name="Web shop", slug="web")


@pytest.fixture
def write_token(alice: User) -> NewToken:
    return create_api_token(user=alice, name="ci", scope="write")


@pytest.fixture
def read_token(alice: User) -> NewToken:
    return create_api_token(user=alice, name="grafana", scope="read")


@pytest.fixture
def one_window(time_machine: TimeMachineFixture) -> None:
    """The clock pinned inside one rate-limit window. Windows start at whole
    minutes: a test counting attempts across a minute boundary would see the
    count start again half-way and fail for no reason."""
    time_machine.move_to(datetime(2026, 11, 23, 3, 0, 10, tzinfo=UTC), tick=False)


@pytest.fixture
def outbound_loopback(db: None) -> OutboundAllowRule:
    """The local stand-ins for chat and push services (tests/receiver.py)
    listen on 127.0.0.1, which triage's outbound policy refuses. Staff allow
    it here as they would a LAN ntfy: with a rule row, which transactional
    tests commit, so real worker processes see it too."""
    return OutboundAllowRule.objects.create(target="127.0.0.0/8", note="the tests' receivers")


@pytest.fixture
def chat_api(settings: Any, outbound_loopback: OutboundAllowRule) -> Iterator[ChatServer]:
    """Stand-ins for Slack's Web API and Mattermost's API v4 on 127.0.0.1, with
    triage (and, through chat_env, a worker) configured to call them."""
    with chat_server() as server:
        for name, value in chat_env(server).items():
            setattr(settings, name, value)
        yield server
