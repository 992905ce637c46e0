"""triage settings: one flat file, everything from the environment.

Each variable is read through a typed helper from ``triage.env`` that names the
variable when its value is wrong, so a bad deployment stops at start with a
message instead of failing later. docs/configuration.md lists them.
"""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from triage.env import (
    env_bool,
    env_choice,
    env_clock_range,
    env_float,
    env_int,
    env_list,
    env_required,
    env_str,
)

# Lets admin.ModelAdmin[Model] and friends be subscripted at runtime for mypy.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = env_required(
    "SECRET_KEY",
    "Set it to a long random string (or SECRET_KEY_FILE to a file holding one); "
    "`make run` generates one for local use.",
)
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise ImproperlyConfigured(
            f"CSRF_TRUSTED_ORIGINS entries must start with http:// or https://, got {_origin!r}"
        )

# The public URL of this instance, used in links sent to people (pages, chat).
BASE_URL = (env_str("BASE_URL", "http://localhost:8000") or "").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "django_prometheus",
    "triage.apps.TriageConfig",
    # Tokens and API authentication, which every app below builds on; it
    # imports none of them.
    "accounts",
    "incidents",
    "paging",
    # On-call health: read-only figures over incidents and paging.
    "insights",
    "postmortems",
    "integrations",
    "chat",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "triage.logs.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "triage.badinput.RefuseUnstorableCharactersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "triage.lean.SkipConnectionHealthCheck",
    # triage.lean: the browser-only middleware, skipped on the paths
    # monitoring posts to (sessions, auth, messages, CSP, htmx). CSRF and
    # X-Frame-Options stay stock: `check --deploy` looks for them by name, and
    # on the (csrf_exempt) machine views they cost a cookie read and a header.
    "triage.lean.Sessions",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "triage.lean.Authentication",
    "triage.lean.Messages",
    # Each person's time zone for the pages (after authentication).
    "accounts.middleware.TimeZone",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "triage.lean.ContentSecurityPolicy",
    "triage.lean.Htmx",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "triage.urls"
WSGI_APPLICATION = "triage.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.time_zone",
            ],
        },
    },
]


def _database_from_url(url: str) -> dict[str, object]:
    try:
        config: dict[str, object] = dict(dj_database_url.parse(url))
    except Exception as exc:  # dj-database-url raises several unrelated types
        raise ImproperlyConfigured(
            f"DATABASE_URL is not a valid database URL ({exc}). "
            "Expected postgresql://USER:PASSWORD@HOST:PORT/NAME."
        ) from None
    if config.get("ENGINE") != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            "DATABASE_URL must point at PostgreSQL (postgresql://...), "
            f"got {urlsplit(url).scheme!r}"
        )
    options = dict(config.pop("OPTIONS", None) or {})  # type: ignore[call-overload]
    # A unix-socket URL (postgresql://user@/db?host=/path) carries the socket
    # folder as an option; Django wants it in HOST.
    if "host" in options:
        config["HOST"] = options.pop("host")
    # Fail fast instead of hanging when PostgreSQL is unreachable: a request
    # during an outage should get a 503 in seconds, not block a worker.
    options.setdefault("connect_timeout", env_int("DATABASE_CONNECT_TIMEOUT", 3, minimum=1))
    # Server-side parameter binding: values travel apart from the SQL text.
    # Queries are not prepared (Django's prepare_threshold=None is kept on
    # purpose): a prepared statement's generic plan cannot use the partial
    # indexes whose predicate (status IN the open statuses) arrives as a
    # parameter, and ingest fell from 200 to 58 events/s with 20,000
    # incidents in the table. Turn binding off behind a transaction-pooling
    # PgBouncer older than 1.21.
    options.setdefault("server_side_binding", env_bool("DATABASE_SERVER_SIDE_BINDING", True))
    config["OPTIONS"] = options
    config["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
    # Skipped on machine paths (triage.lean.SkipConnectionHealthCheck: why).
    config["CONN_HEALTH_CHECKS"] = True
    return config


DATABASES = {
    "default": _database_from_url(
        env_required(
            "DATABASE_URL",
            "Point it at PostgreSQL (postgresql://USER:PASSWORD@HOST:5432/NAME); "
            "`make run` starts an embedded one when it is unset.",
        )
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _redis_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss", "unix"} or not (parts.netloc or parts.path):
        raise ImproperlyConfigured(
            f"REDIS_URL must look like redis://HOST:6379/0, rediss://... or unix:///path.sock, "
            f"got {url!r}"
        )
    return url


def _celery_broker_url(url: str) -> str:
    """Kombu spells a unix-socket Redis as redis+socket:// with virtual_host for the db."""
    parts = urlsplit(url)
    if parts.scheme != "unix":
        return url
    db = parse_qs(parts.query).get("db", ["0"])[0]
    return f"redis+socket://{parts.path}?virtual_host={db}"


REDIS_URL = _redis_url(
    env_required(
        "REDIS_URL",
        "Point it at Redis (redis://HOST:6379/0); `make run` starts an embedded one when unset.",
    )
)
# Every Redis call from a request path is bounded so a Redis outage degrades
# the dashboard to PostgreSQL instead of hanging it.
REDIS_TIMEOUT = env_float("REDIS_TIMEOUT", 0.5, minimum=0.05)

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {
            "SOCKET_CONNECT_TIMEOUT": REDIS_TIMEOUT,
            "SOCKET_TIMEOUT": REDIS_TIMEOUT,
        },
        "KEY_PREFIX": "triage",
    },
    # Sessions (cached_db below): PostgreSQL holds them, Redis is only a
    # read-through copy, so a Redis error is ignored and the session is read
    # from PostgreSQL: people stay logged in while Redis is down.
    "sessions": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {
            "SOCKET_CONNECT_TIMEOUT": REDIS_TIMEOUT,
            "SOCKET_TIMEOUT": REDIS_TIMEOUT,
            "IGNORE_EXCEPTIONS": True,
        },
        "KEY_PREFIX": "triage",
    },
}
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Django's own: sessions in PostgreSQL with a copy in Redis (a page view
# reads its session from Redis), users through ModelBackend.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_CACHE_ALIAS = "sessions"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC") or "UTC"
try:
    zoneinfo.ZoneInfo(TIME_ZONE)
except (zoneinfo.ZoneInfoNotFoundError, ValueError):
    raise ImproperlyConfigured(
        f"TIME_ZONE must be an IANA time zone such as UTC or Europe/Berlin, got {TIME_ZONE!r}"
    ) from None
USE_I18N = False
USE_TZ = True
# Business hours, Monday to Friday in TIME_ZONE (start inclusive, end
# exclusive): /insights splits each person's pages into business hours,
# nights (the rest of a weekday) and weekends (all of Saturday and Sunday).
BUSINESS_HOURS = env_clock_range("BUSINESS_HOURS", "09:00-18:00")

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")) or "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
# Files served at the site's root by WhiteNoise, before any middleware that
# reads the session: /favicon.ico, which browsers ask for on every page that
# names no icon (the admin's, JSON, error pages).
WHITENOISE_ROOT = BASE_DIR / "triage" / "webroot"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # Hashed, compressed files in production; plain files while developing.
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Security. Cookies are secure unless DEBUG (the dev stack serves plain HTTP).
SECURE_COOKIES = env_bool("SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Probes hit /healthz and /readyz over plain HTTP inside the cluster.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# A bearer token GET /metrics then requires (Prometheus sends it). Production
# should set one: the figures tell open incidents, pages sent and failed, and
# which admin pages were visited. Empty: /metrics is open, as in development.
METRICS_TOKEN = env_str("METRICS_TOKEN", "") or ""
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): scripts only from our own static
# files — no inline script anywhere, and htmx runs with allowEval off and its
# indicator styles off (see base.html). Inline *styles* stay allowed for the
# Django admin's and the /v1/docs Swagger UI's style attributes.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# Celery: at-least-once delivery. A task is acknowledged after it ran, so a
# worker killed mid-task leaves it on the queue for another worker; every task
# is therefore written to be safe to run twice.
CELERY_BROKER_URL = _celery_broker_url(REDIS_URL)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True  # tasks that need a result opt in
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 120, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = max(1, CELERY_TASK_TIME_LIMIT - 10)
# Redis redelivers an unacknowledged task after this many seconds; it must be
# longer than the longest task, or a slow task would run twice at once.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_TASK_TIME_LIMIT * 3,
    # Poll the queues in CELERY_TASK_QUEUES' order, escalation checks first.
    "queue_order_strategy": "priority",
}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Two queues, and every worker consumes both (a worker given no --queues
# takes every queue listed here; the commands triage ships name them anyway).
# "escalation" carries beat's escalation checks; "celery", Celery's default,
# everything else: the storm chunks a check hands out, deliveries, chat. An
# escalation storm queues thousands of deliveries, and beat's next checks no
# longer wait behind them: the workers poll the queues in the order listed
# ("priority" in the transport options above), so a check waits at most for
# the tasks already running. A check is one Redis call when nothing is due.
ESCALATION_QUEUE = "escalation"
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = (Queue(ESCALATION_QUEUE), Queue(CELERY_TASK_DEFAULT_QUEUE))
CELERY_TASK_ROUTES = {"paging.check_escalations": {"queue": ESCALATION_QUEUE}}
ESCALATION_CHECK_SECONDS = env_float("ESCALATION_CHECK_SECONDS", 1.0, minimum=0.1)
RECONCILE_SECONDS = env_float("RECONCILE_SECONDS", 60.0, minimum=1.0)
# How long a claimed deadline stays hidden from other checkers; a checker that
# dies mid-escalation delays that escalation by at most this much.
ESCALATION_CLAIM_LEASE = env_float("ESCALATION_CLAIM_LEASE", 30.0, minimum=1.0)
# An escalation storm: a pass claims up to ESCALATION_CLAIM_BATCH due
# deadlines and acts on them in chunks of ESCALATION_CHUNK_SIZE incidents,
# one transaction (and one worker task) per chunk.
ESCALATION_CLAIM_BATCH = env_int("ESCALATION_CLAIM_BATCH", 20000, minimum=1)
ESCALATION_CHUNK_SIZE = env_int("ESCALATION_CHUNK_SIZE", 500, minimum=1)
# An external dead-man's switch (healthchecks.io, Uptime Kuma push URL...)
# pinged after each healthy escalation pass, at most once a minute.
ESCALATION_HEARTBEAT_URL = env_str("ESCALATION_HEARTBEAT_URL", "") or ""
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "escalation-check": {
        "task": "paging.check_escalations",
        "schedule": ESCALATION_CHECK_SECONDS,
        # A check nobody ran within this time is dropped: the next one covers it.
        "options": {"expires": max(ESCALATION_CHECK_SECONDS * 5, 5)},
    },
    "paging-reconcile": {
        "task": "paging.reconcile",
        "schedule": RECONCILE_SECONDS,
        "options": {"expires": RECONCILE_SECONDS},
    },
    # Heartbeat timeouts are at least 10 s; a check every 10 s opens an
    # incident at most 10 s after a missed deadline.
    # On-call health: roll up closed days and warm the figures' cache
    # (insights.cache.REFRESH_SECONDS, within the entries' minute).
    "insights-refresh": {
        "task": "insights.refresh",
        "schedule": 45.0,
        "options": {"expires": 45.0},
    },
    "integrations-heartbeats": {
        "task": "integrations.check_heartbeats",
        "schedule": 10.0,
        "options": {"expires": 10.0},
    },
}

LOG_LEVEL = env_choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper()
LOG_FORMAT = env_choice("LOG_FORMAT", "json", ("json", "console"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "triage.logs.ContextFilter"},
        "quiet_routine_tasks": {"()": "triage.logs.QuietRoutineTasks"},
    },
    "formatters": {
        "json": {"()": "triage.logs.JsonFormatter"},
        "console": {"()": "triage.logs.ConsoleFormatter"},
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        # Our access log replaces Django's and gunicorn's per-request lines.
        "django.server": {"level": "WARNING"},
        "django.request": {"level": "ERROR"},
        # Celery's lines about every run of the once-a-second escalation check
        # are dropped (triage.logs.ROUTINE_TASKS): it logs when it did something.
        "celery.app.trace": {"level": LOG_LEVEL, "filters": ["quiet_routine_tasks"]},
        "celery.worker.strategy": {"filters": ["quiet_routine_tasks"]},
        "celery.worker.request": {"filters": ["quiet_routine_tasks"]},
        "celery.beat": {"filters": ["quiet_routine_tasks"]},
    },
}

# Post-mortems, the public report page and the status page (postmortems app).
# REPORTS_PAGE: whether incidents opened from the public report form page
# people; when false they are recorded with {"unpaged": true} on their
# opening event. REPORTS_DEFAULT_SERVICE is the slug used when a reporter
# does not pick a service. POSTMORTEM_NOTIFY_URL is an apprise URL (empty: off).
REPORTS_PAGE = env_bool("REPORTS_PAGE", True)
REPORTS_DEFAULT_SERVICE = env_str("REPORTS_DEFAULT_SERVICE", "") or ""
REPORTS_SEVERITY = env_choice(
    "REPORTS_SEVERITY", "warning", ("critical", "error", "warning", "info")
)
REPORTS_RATE_LIMIT = env_int("REPORTS_RATE_LIMIT", 5, minimum=1)
REPORTS_RATE_WINDOW = env_int("REPORTS_RATE_WINDOW", 600, minimum=1)
REPORTS_MIN_FILL_SECONDS = env_int("REPORTS_MIN_FILL_SECONDS", 3, minimum=0)
POSTMORTEM_NOTIFY_URL = env_str("POSTMORTEM_NOTIFY_URL", "") or ""

# Where triage may send what people and operators point it at (contact
# methods, POSTMORTEM_NOTIFY_URL, ESCALATION_HEARTBEAT_URL): triage/outbound.py.
# OUTBOUND_SCHEMES: the apprise schemes allowed. OUTBOUND_ALLOW: host names,
# addresses or networks allowed although private (a LAN ntfy), beside the
# staff's rules in the admin. Both are checked at start (TriageConfig.ready).
# The default lists apprise services reached over HTTP(S) or SMTP, the
# transports the guard covers (apprise 2.2 names: Microsoft Teams is
# workflow/workflows, Pushover is pover).
# fmt: off
_HTTP_AND_MAIL_SCHEMES = [
    "ntfy", "ntfys", "json", "jsons", "form", "forms", "xml", "xmls", "slack", "discord",
    "tgram", "matrix", "matrixs", "mailto", "mailtos", "gotify", "gotifys", "pover",
    "workflow", "workflows", "mmost", "mmosts", "rocket", "rockets", "gchat", "zulip",
    "pbul", "opsgenie", "pagerduty", "signal", "signals", "wxteams", "webex",
]
# fmt: on
OUTBOUND_SCHEMES = [s.lower() for s in env_list("OUTBOUND_SCHEMES", _HTTP_AND_MAIL_SCHEMES)]
OUTBOUND_ALLOW = env_list("OUTBOUND_ALLOW", [])

# Proxies in front of triage: with N > 0 the client address used by rate
# limits is the Nth address from the right of X-Forwarded-For.
TRUSTED_PROXIES = env_int("TRUSTED_PROXIES", 0, minimum=0)
LOGIN_RATE_LIMIT = env_int("LOGIN_RATE_LIMIT", 10, minimum=1)
LOGIN_RATE_WINDOW = env_int("LOGIN_RATE_WINDOW", 300, minimum=1)
# A browser that logged in as someone before carries a signed device cookie
# for them (triage.auth): its attempts for that person skip the limits above
# and have a budget of their own, so nobody can lock a person out of it.
LOGIN_DEVICE_LIMIT = env_int("LOGIN_DEVICE_LIMIT", 5, minimum=1)
DEVICE_COOKIE_AGE = env_int("DEVICE_COOKIE_AGE", 180 * 24 * 3600, minimum=1)
PUBLIC_RATE_LIMIT = env_int("PUBLIC_RATE_LIMIT", 120, minimum=1)
PUBLIC_RATE_WINDOW = env_int("PUBLIC_RATE_WINDOW", 60, minimum=1)

# Storm protection (incidents.storms), the defaults for services that do not
# set their own in the admin: more than STORM_THRESHOLD incidents opened by
# monitoring within STORM_WINDOW_SECONDS make further new alerts join one
# "Alert storm" incident, until STORM_QUIET_SECONDS pass without a new alert.
# A threshold of 0 turns storm protection off.
STORM_THRESHOLD = env_int("STORM_THRESHOLD", 20, minimum=0)
STORM_WINDOW_SECONDS = env_int("STORM_WINDOW_SECONDS", 60, minimum=1)
STORM_QUIET_SECONDS = env_int("STORM_QUIET_SECONDS", 300, minimum=1)

# Signed Acknowledge / Resolve / Escalate links in every page's message
# (paging.links): seconds a link works after it was sent. A link also stops
# working once its incident is resolved, and each one works once.
ACTION_LINK_MAX_AGE = env_int("ACTION_LINK_MAX_AGE", 24 * 3600, minimum=60)

# --- Integrations: ingest keys, the /v1 API, the MCP server (integrations app) ---
# django-ninja's own app serves the /v1/docs page's Swagger UI from our static
# files instead of a CDN.
INSTALLED_APPS += ["ninja"]
# MCP write tools (acknowledge, escalate, note, resolve) are off unless enabled.
MCP_WRITE_TOOLS = env_bool("MCP_WRITE_TOOLS", False)
# The user `manage.py mcp` (stdio) acts as when --user is not given.
MCP_USER = env_str("MCP_USER", "") or ""
# Email integrations (`manage.py ingest_email`, docs/integrations.md): the
# domain of the addresses triage makes up for them (your MTA routes it to the
# command), and the largest message accepted — Postfix's own default
# message_size_limit, so a message Postfix took is never refused for its size.
EMAIL_INGEST_DOMAIN = (
    env_str("EMAIL_INGEST_DOMAIN", "") or urlsplit(BASE_URL).hostname or "localhost"
).lower()
EMAIL_INGEST_MAX_BYTES = env_int("EMAIL_INGEST_MAX_BYTES", 10_240_000, minimum=1024)

# --- Two-way chat: Slack and Mattermost (chat app; docs/chat.md) ---
# Each provider is on when its secrets are set: Slack needs the signing
# secret (to verify Slack's requests) and a bot token (to post); Mattermost
# needs its URL, a bot token and the slash command's token.
SLACK_SIGNING_SECRET = env_str("SLACK_SIGNING_SECRET", "") or ""
SLACK_BOT_TOKEN = env_str("SLACK_BOT_TOKEN", "") or ""
SLACK_API_URL = env_str("SLACK_API_URL", "https://slack.com/api/") or "https://slack.com/api/"
if not SLACK_API_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"SLACK_API_URL must be an http(s) URL, got {SLACK_API_URL!r}")
SLACK_API_URL = SLACK_API_URL.rstrip("/") + "/"  # slack_sdk joins method names onto it
MATTERMOST_URL = (env_str("MATTERMOST_URL", "") or "").rstrip("/")
if MATTERMOST_URL and not MATTERMOST_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(
        f"MATTERMOST_URL must be an http(s) URL such as https://chat.example.org, "
        f"got {MATTERMOST_URL!r}"
    )
MATTERMOST_BOT_TOKEN = env_str("MATTERMOST_BOT_TOKEN", "") or ""
MATTERMOST_COMMAND_TOKEN = env_str("MATTERMOST_COMMAND_TOKEN", "") or ""
# Seconds to wait for Slack or Mattermost before a call counts as failed.
CHAT_TIMEOUT = env_float("CHAT_TIMEOUT", 10.0, minimum=0.5)

# --- Sign in with an OpenID Connect provider (accounts.oidc; docs/deploy.md) ---
# Off while OIDC_ISSUER is empty. The provider's endpoints are read from
# <issuer>/.well-known/openid-configuration at the first sign-in, not here:
# triage must start, and page people, while the provider is down.
OIDC_ISSUER = (env_str("OIDC_ISSUER", "") or "").strip()
OIDC_CLIENT_ID = env_str("OIDC_CLIENT_ID", "") or ""
OIDC_CLIENT_SECRET = env_str("OIDC_CLIENT_SECRET", "") or ""
OIDC_PROVIDER_NAME = env_str("OIDC_PROVIDER_NAME", "") or "your identity provider"
OIDC_SCOPES = env_str("OIDC_SCOPES", "") or "openid email profile"
OIDC_GROUPS_CLAIM = env_str("OIDC_GROUPS_CLAIM", "") or "groups"
# Members of this group (in the groups claim) are staff, everyone else is not,
# set again at every sign-in. Empty: staff is managed in the admin only.
OIDC_STAFF_GROUP = env_str("OIDC_STAFF_GROUP", "") or ""
# false: only superusers may log in with a password (the break-glass way in
# while the provider is down); everyone else signs in with the provider.
OIDC_PASSWORD_LOGIN = env_bool("OIDC_PASSWORD_LOGIN", True)
# Only superusers may log in with a password while this is off (triage.auth's
# LoginForm). The OpenID Connect backend answers only the sign-in callback and
# is cheap to ask otherwise; the password backend stays first (the default
# for logins that name none).
AUTHENTICATION_BACKENDS = [*AUTHENTICATION_BACKENDS, "accounts.oidc.OidcBackend"]
if OIDC_ISSUER:
    _issuer = urlsplit(OIDC_ISSUER)
    _loopback = _issuer.hostname in {"localhost", "127.0.0.1", "::1"}
    if not (_issuer.scheme == "https" or (_issuer.scheme == "http" and _loopback)):
        raise ImproperlyConfigured(
            f"OIDC_ISSUER must be an https:// URL such as https://sso.example.org/realms/main, "
            f"got {OIDC_ISSUER!r}"
        )
    for _name, _value in (
        ("OIDC_CLIENT_ID", OIDC_CLIENT_ID),
        ("OIDC_CLIENT_SECRET", OIDC_CLIENT_SECRET),
    ):
        if not _value:
            raise ImproperlyConfigured(
                f"{_name} is required when OIDC_ISSUER is set: the client registered "
                "for triage at the identity provider."
            )
    if "openid" not in OIDC_SCOPES.split():
        raise ImproperlyConfigured(f"OIDC_SCOPES must include openid, got {OIDC_SCOPES!r}")
elif not OIDC_PASSWORD_LOGIN:
    raise ImproperlyConfigured(
        "OIDC_PASSWORD_LOGIN=false needs OIDC_ISSUER: without a provider only "
        "superusers could log in."
    )
