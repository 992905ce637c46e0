"""Faults and load against real processes: PostgreSQL and Redis restarted
under traffic, a worker killed mid-notification, beat stopped for a minute,
and a burst of 1,000 alerts while responders watch the dashboard.

The restart tests run a stack of their own — an embedded PostgreSQL and Redis
in a temporary folder, migrated and seeded, with gunicorn, a Celery worker
and beat — so they can stop its servers without touching the suite's.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.utils import timezone
from redis import Redis

from incidents.models import EventKind, Incident, Service
from paging import state
from paging.models import Page, PageStatus
from tests.factories import IncidentFactory, UserFactory, contact, policy_with_levels
from tests.processes import BIN, ROOT, app_env, celery_worker, free_port, stop, wait_for
from tests.receiver import Receiver, receiver
from triage.devstack import EmbeddedPostgres, EmbeddedRedis

pytestmark = pytest.mark.slow

SEED = """
import json
from incidents.models import Service
from accounts.tokens import create_api_token
from integrations.keys import create_integration
from paging.models import ContactMethod, EscalationLevel, EscalationPolicy

people = {}
for name in ("ana", "ben"):
    people[name] = User.objects.create_user(name, password="a-long-test-password")
    ContactMethod.objects.create(user=people[name], name="hook", url=RECEIVER + "?to=" + name)
policy = EscalationPolicy.objects.create(name="Web")
for position, name in enumerate(("ana", "ben")):
    level = EscalationLevel.objects.create(policy=policy, position=position, delay_minutes=1)
    level.users.add(people[name])
# The streams below send hundreds of distinct alerts a minute, each its own
# incident: storm protection (tests/test_storms.py) is off for this service.
web = Service.objects.create(
    name="Web shop", slug="web", escalation_policy=policy, storm_threshold=0
)
key = create_integration(
    service=web, kind="events_v2", name="load", rate_limit_per_minute=100000
).raw
token = create_api_token(user=people["ana"], name="faults", scope="read").raw
print(json.dumps({"key": key, "token": token}))
"""


@dataclass
class Isolated:
    """triage on servers of its own, which the test may stop and start."""

    folder: Path
    postgres: EmbeddedPostgres
    redis: EmbeddedRedis
    env: dict[str, str]
    inbox: Receiver
    key: str = ""
    token: str = ""
    base: str = ""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, command: list[str], **extra: str) -> None:
        self.processes[name] = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**self.env, **extra},
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self, name: str) -> None:
        stop(self.processes.pop(name))

    def start_beat(self) -> None:
        schedule = str(self.folder / "beat-schedule")
        command = [str(BIN / "celery"), "-A", "triage", "beat", "-s", schedule]
        self.start("beat", [*command, "--max-interval", "1"])

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.postgres.url, autocommit=True) as connection:
            cursor = connection.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def restart_redis(self, down_for: float) -> None:
        self.redis.stop()
        time.sleep(down_for)
        self.redis = EmbeddedRedis(self.folder / "redis")  # same socket, empty data

    def post_event(self, dedup: str, timeout: float = 10) -> int:
        event = {
            "routing_key": self.key,
            "event_action": "trigger",
            "dedup_key": dedup,
            "payload": {"summary": f"disk full {dedup}", "source": "db1", "severity": "error"},
        }
        request = urllib.request.Request(
            f"{self.base}/v2/enqueue",
            data=json.dumps(event).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    def status(self, path: str) -> int | None:
        try:
            with urllib.request.urlopen(f"{self.base}{path}", timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return None

    def browser(self) -> urllib.request.OpenerDirector:
        """A logged-in session (cookies, CSRF token) for ana."""
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = opener.open(f"{self.base}/login", timeout=5).read().decode()
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert csrf is not None
        form = {
            "csrfmiddlewaretoken": csrf.group(1),
            "username": "ana",
            "password": "a-long-test-password",
        }
        request = urllib.request.Request(
            f"{self.base}/login",
            data=urllib.parse.urlencode(form).encode(),
            headers={"Referer": f"{self.base}/login"},
        )
        assert 'id="incident-list"' in opener.open(request, timeout=5).read().decode()
        return opener

    def escalations(self) -> list[int]:
        """Per open incident, how many times it was escalated."""
        rows = self.sql(
            "SELECT i.id, count(e.id) FROM incidents_incident i LEFT JOIN incidents_timelineevent e"
            " ON e.incident_id = i.id AND e.kind = %s WHERE i.status <> 'resolved'"
            " GROUP BY i.id ORDER BY i.id",
            EventKind.ESCALATED.value,
        )
        return [count for _, count in rows]


@pytest.fixture
def isolated() -> Iterator[Isolated]:
    folder = Path(tempfile.mkdtemp(prefix="triage-fault-"))  # short: unix socket paths
    postgres = EmbeddedPostgres(folder / "pg")
    redis = EmbeddedRedis(folder / "redis")
    with receiver() as inbox:
        env = {
            **os.environ,
            "DATABASE_URL": postgres.url,
            "REDIS_URL": redis.url,
            "SECRET_KEY": "fault-tests-only-" + "x" * 40,
            "DEBUG": "false",
            "LOG_LEVEL": "warning",
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_COOKIES": "false",
            "DATABASE_CONNECT_TIMEOUT": "1",
            "ESCALATION_CHECK_SECONDS": "0.5",
            "RECONCILE_SECONDS": "2",
            # The receiver listens on 127.0.0.1: allowed the operator's way.
            "OUTBOUND_ALLOW": "127.0.0.0/8",
        }
        for name in ("DJANGO_ALLOW_ASYNC_UNSAFE", "PROMETHEUS_MULTIPROC_DIR"):
            env.pop(name, None)
        stack = Isolated(folder=folder, postgres=postgres, redis=redis, env=env, inbox=inbox)
        manage = [str(BIN / "python"), "manage.py"]
        subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        seeded = subprocess.run(
            [*manage, "shell", "-c", f"RECEIVER = {inbox.url!r}\n{SEED}"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        secrets = json.loads(seeded.stdout.strip().splitlines()[-1])
        stack.key, stack.token = secrets["key"], secrets["token"]
        port = free_port()
        stack.base = f"http://127.0.0.1:{port}"
        gunicorn = [str(BIN / "gunicorn"), "-c", str(ROOT / "triage" / "gunicorn.conf.py")]
        stack.start(
            "web",
            [*gunicorn, "--bind", f"127.0.0.1:{port}", "-w", "2", "--threads", "4", "triage.wsgi"],
        )
        worker = [str(BIN / "celery"), "-A", "triage", "worker", "--concurrency", "2"]
        stack.start("worker", [*worker, "--without-gossip", "--without-mingle"])
        stack.start_beat()
        try:
            wait_for(lambda: stack.status("/healthz") == 200, 30, "gunicorn up")
            yield stack
        finally:
            for name in list(stack.processes):
                stack.stop(name)
            stack.redis.stop()
            stack.postgres.stop()
            shutil.rmtree(folder, ignore_errors=True)


def test_postgres_restarted_in_a_stream_of_ingests(isolated: Isolated) -> None:
    """Every event answered 2xx is kept; during the outage requests fail fast
    with 503 and /readyz says so; afterwards triage works again by itself."""
    answers: list[tuple[str, int, float]] = []
    done = threading.Event()

    def send(sender: int) -> None:
        for n in range(100_000):
            if done.is_set():
                return
            dedup = f"s{sender}-{n}"
            started = time.monotonic()
            answers.append((dedup, isolated.post_event(dedup), time.monotonic() - started))
            time.sleep(0.01)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: sum(a[1] == 202 for a in answers) >= 40, 30, "ingest under way")
        isolated.postgres.stop()
        outage_started = len(answers)
        wait_for(lambda: isolated.status("/readyz") == 503, 10, "/readyz reports the outage")
        time.sleep(3)
        during = answers[outage_started:]
        isolated.postgres.start()
        wait_for(lambda: isolated.status("/readyz") == 200, 30, "/readyz recovers")
        recovered = len(answers)
        wait_for(lambda: sum(a[1] == 202 for a in answers[recovered:]) >= 20, 30, "ingest again")
    finally:
        done.set()
        for thread in threads:
            thread.join(30)

    statuses = {status for _, status, _ in answers}
    assert statuses <= {202, 503}, statuses  # never a 500, never a hang
    assert any(status == 503 for _, status, _ in during)
    slowest = max(answers, key=lambda answer: answer[2])
    assert slowest[2] < 5, f"{slowest} (event {answers.index(slowest)}, outage {outage_started})"
    accepted = [dedup for dedup, status, _ in answers if status == 202]
    stored = {row[0] for row in isolated.sql("SELECT dedup_key FROM incidents_incident")}
    assert set(accepted) <= stored, "an event answered 202 was lost"


def test_redis_restarted_and_flushed_during_escalations(isolated: Isolated) -> None:
    """Escalations that fall due while Redis is down or empty happen once each;
    the dashboard keeps working from PostgreSQL meanwhile."""
    for n in range(4):
        assert isolated.post_event(f"redis-{n}") == 202
    wait_for(lambda: len(isolated.inbox.messages) == 4, 30, "level 1 paged")
    browser = isolated.browser()

    def make_all_due() -> None:
        isolated.sql(
            "UPDATE incidents_incident SET next_escalation_at = now() - interval '1 second'"
            " WHERE status <> 'resolved'"
        )

    # Restart: the deadlines fall due while Redis is away.
    make_all_due()
    isolated.redis.stop()
    page = browser.open(f"{isolated.base}/", timeout=5).read().decode()
    assert page.count('data-incident="') == 4  # from PostgreSQL, Redis being down
    time.sleep(2)
    isolated.redis = EmbeddedRedis(isolated.folder / "redis")
    wait_for(lambda: len(isolated.inbox.messages) == 8, 40, "level 2 paged after the restart")
    assert isolated.escalations() == [1, 1, 1, 1]

    # Flush: the deadline index and the queues vanish at once.
    make_all_due()
    Redis(unix_socket_path=str(isolated.redis.socket_path)).flushall()
    wait_for(lambda: len(isolated.inbox.messages) == 12, 40, "escalated again after the flush")
    time.sleep(3)  # several more passes and a reconciliation
    assert isolated.escalations() == [2, 2, 2, 2]
    assert len(isolated.inbox.messages) == 12
    assert "ben" in browser.open(f"{isolated.base}/", timeout=5).read().decode()


def test_a_burst_of_alerts_while_responders_watch_the_dashboard(isolated: Isolated) -> None:
    """1,000 Events v2 triggers for 50 dedup keys, 20 at a time, while two
    responders refresh the dashboard: no 5xx, 50 incidents, every repeat kept."""
    browsers = [isolated.browser() for _ in range(2)]
    done = threading.Event()
    views: list[int] = []

    def watch(browser: urllib.request.OpenerDirector) -> None:
        while not done.is_set():
            try:
                views.append(browser.open(f"{isolated.base}/", timeout=10).status)
            except urllib.error.HTTPError as exc:
                views.append(exc.code)

    watchers = [threading.Thread(target=watch, args=(b,)) for b in browsers]
    for watcher in watchers:
        watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(lambda n: isolated.post_event(f"burst-{n % 50}"), range(1000)))
    finally:
        done.set()
        for watcher in watchers:
            watcher.join(30)

    assert statuses.count(202) == 1000
    assert views
    assert set(views) == {200}
    incidents = isolated.sql("SELECT count(*) FROM incidents_incident")[0][0]
    repeats = isolated.sql(
        "SELECT count(*) FROM incidents_timelineevent WHERE kind = %s", EventKind.ALERT.value
    )[0][0]
    assert incidents == 50
    assert repeats == 950


# --- on the suite's own servers ----------------------------------------------------


@pytest.fixture
def paged(
    web: Service, redis: Redis, outbound_loopback: object
) -> Iterator[tuple[Service, Receiver]]:
    with receiver() as inbox:
        people = [UserFactory(username=name) for name in ("ana", "ben")]
        for person in people:
            contact(person, url=f"{inbox.url}?to={person.username}")
        web.escalation_policy = policy_with_levels((1, [people[0]]), (1, [people[1]]))
        web.save()
        yield web, inbox


def make_due(incident: Incident) -> None:
    """What a minute of waiting does to a one-minute deadline: it has passed."""
    past = timezone.now() - timedelta(seconds=1)
    Incident.objects.filter(pk=incident.pk).update(next_escalation_at=past)
    state.set_deadline(incident.pk, past)


@contextlib.contextmanager
def beat(folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    command = [str(BIN / "celery"), "-A", "triage", "beat", "-s", str(folder / "schedule")]
    process = subprocess.Popen(
        [*command, "--max-interval", "1"],
        cwd=ROOT,
        env=app_env(ESCALATION_CHECK_SECONDS="0.5", RECONCILE_SECONDS="2"),
        start_new_session=True,
    )
    try:
        yield process
    finally:
        stop(process)


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_notification_is_retried_and_recorded_once(
    paged: tuple[Service, Receiver], tmp_path: Path
) -> None:
    service, inbox = paged
    inbox.hang_next = 1  # the chat service takes the message and never answers
    env = app_env(CELERY_TASK_TIME_LIMIT="5", ESCALATION_CHECK_SECONDS="0.5")
    with celery_worker(env=env) as victim:
        incident = IncidentFactory(service=service, title="Checkout returns 502")
        assert inbox.hanging.wait(30), "the worker never started sending"
        os.killpg(victim.pid, signal.SIGKILL)
    inbox.release.set()
    assert Page.objects.get().status == PageStatus.SENDING  # claimed, never finished

    # A new worker: the dead worker's claim expires with the task time limit,
    # reconciliation sends the page again, and it is recorded once.
    with celery_worker(env=env), beat(tmp_path):
        wait_for(lambda: len(inbox.messages) == 1, 60, "the page sent again")
        wait_for(lambda: Page.objects.get().status == PageStatus.SENT, 10, "recorded as sent")
        time.sleep(3)  # more reconciliation passes change nothing
    page = Page.objects.get()
    assert (page.incident_id, page.level, page.status) == (incident.pk, 1, PageStatus.SENT)
    assert len(inbox.messages) == 1


@pytest.mark.django_db(transaction=True)
def test_beat_stopped_for_a_minute_catches_up_once_and_at_once(
    paged: tuple[Service, Receiver], tmp_path: Path, redis: Redis
) -> None:
    service, inbox = paged
    with celery_worker(env=app_env(ESCALATION_CHECK_SECONDS="0.5")):
        with beat(tmp_path):
            incidents = [IncidentFactory(service=service) for _ in range(3)]
            wait_for(lambda: len(inbox.messages) == 3, 30, "level 1 paged")
        # Beat is down while the one-minute deadlines pass: moved into the past
        # (as tests/test_paging_processes.py does) rather than waited out, then
        # several check intervals (0.5 s) and a reconciliation (2 s) go by with
        # only the worker up. Nothing may page without beat. The checks beat
        # sent before it stopped are let through first (queued or running
        # still, they would see the moved deadlines; a minute's wait drained
        # them unseen).
        wait_for(
            lambda: (
                redis.llen("escalation") == 0
                and redis.llen("celery") == 0
                and redis.hlen("unacked") == 0
            ),
            30,
            "the worker has run every check beat sent",
        )
        for incident in incidents:
            make_due(incident)
        time.sleep(3)
        assert len(inbox.messages) == 3
        for incident in incidents:
            incident.refresh_from_db()
            assert incident.escalation_level == 1
        back = time.monotonic()
        with beat(tmp_path):
            wait_for(lambda: len(inbox.messages) == 6, 15, "level 2 paged on restart")
            caught_up = time.monotonic() - back
            time.sleep(3)
    assert caught_up < 10
    assert len(inbox.messages) == 6
    for incident in Incident.objects.all():
        assert incident.timeline.filter(kind=EventKind.ESCALATED).count() == 1
        assert list(incident.pages.values_list("level", flat=True).order_by("pk")) == [1, 2]
