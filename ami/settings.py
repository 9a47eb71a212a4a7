"""Django settings, configured from the environment.

The servers' URLs come from `DATABASE_URL`, `NATS_URL` and `REDIS_URL` only; a missing one
is an error that names it. The development tooling's commands (`ami demo`, `ami loadtest`,
`ami bench`) and its test plugin put the embedded servers' URLs there before Django loads
(`ami_lab.servers`); their children inherit them.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from ami.jobs.logging import config as job_log_config

BASE_DIR = Path(__file__).resolve().parent


def _required(name: str, how: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ImproperlyConfigured(f"{name} is not set. {how}")
    return value


def _required_url(name: str) -> str:
    return _required(
        name,
        "Export it (README, Configuration), or run `ami services up` and use the `ami` "
        "command, which passes the embedded servers' URLs on.",
    )


def _env_bool(name: str, default: bool) -> bool:
    return os.environ.get(name, str(default)).lower() in {"1", "true", "yes", "on"}


# No default: a known key makes sessions and signed image URLs forgeable. Development gets
# a key of its own checkout from the lab (`ami services up`, the lab's commands, the tests).
SECRET_KEY = _required(
    "DJANGO_SECRET_KEY",
    "Set a long random value in production (docs/operations.md); in development "
    "`ami services up` and the lab's commands (`ami demo`, the tests) provide one.",
)
DEBUG = _env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "csp",
    "ami.main",
    "ami.ml",
    "ami.jobs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

# -- Browser security -------------------------------------------------------------------------
# The pages load their scripts and styles from this origin only and are never framed. Inline
# styles stay allowed: the API docs page (Swagger UI) sets them; inline scripts do not.
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Served over TLS (production): AMI_HTTPS=1 makes cookies secure, redirects http to https and
# sends HSTS. Behind a proxy that terminates TLS, AMI_TRUST_X_FORWARDED_PROTO=1 lets Django
# see the request as https (only if the proxy always sets that header).
HTTPS = _env_bool("AMI_HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = int(os.environ.get("AMI_HSTS_SECONDS", "31536000")) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("AMI_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = _env_bool("AMI_HSTS_PRELOAD", False)
if _env_bool("AMI_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

ROOT_URLCONF = "ami.urls"
ASGI_APPLICATION = "ami.asgi.application"
WSGI_APPLICATION = "ami.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# -- Databases --------------------------------------------------------------------------------
# `default` serves the application. `logs` is the same database on its own autocommit
# connection, so a job log line is never part of (nor lost with) the caller's transaction.
# A JobLog insert waits on no job row (no FK constraint, migration 0002); its lock_timeout
# bounds the one log write that does: the legacy JSON column's UPDATE of the job row
# (`legacy_json`, dual write), which waits while a result holds that row.
DATABASE_URL = _required_url("DATABASE_URL")
LOG_DB_LOCK_TIMEOUT_MS = int(os.environ.get("AMI_LOG_DB_LOCK_TIMEOUT_MS", "2000"))
# Seconds a connection attempt may take on either alias. Without it an unreachable database
# host (packets dropped, or a server that never answers) blocks a log line, or a request,
# for minutes. libpq counts it per host address and treats values below 2 as 2.
DB_CONNECT_TIMEOUT = int(os.environ.get("AMI_DB_CONNECT_TIMEOUT", "5"))

# application_name tells an operator (and the load test's fault injector) whose
# connection is whose in pg_stat_activity.
APP_NAME = os.environ.get("AMI_APP_NAME", "ami")
# Web processes take their connections from a pool (`AMI_DB_POOL`, turned on by `ami.asgi`):
# the ASGI handler runs each request's sync code on a new thread, and a thread-local
# connection kept for CONN_MAX_AGE dies with its thread, so every request paid a new
# connection (a backend process forked by PostgreSQL: 9 % of a log page's server time).
# Celery's prefork workers keep thread-local connections: a pool inherited across fork is
# shared by the children, and Celery closes pools at task boundaries (celery#10554).
DB_POOL = _env_bool("AMI_DB_POOL", False)
DB_POOL_MAX_SIZE = int(os.environ.get("AMI_DB_POOL_MAX_SIZE", "20"))  # connections per alias
_default_db = dj_database_url.parse(
    DATABASE_URL,
    engine="ami.main.database",  # PostgreSQL; checks pooled connections (its docstring)
    conn_max_age=0 if DB_POOL else 60,
    conn_health_checks=not DB_POOL,
)
_default_db["OPTIONS"] = {
    **_default_db.get("OPTIONS", {}),
    "application_name": APP_NAME,
    "connect_timeout": DB_CONNECT_TIMEOUT,
}
if DB_POOL:
    # A request waiting longer than `timeout` s for a connection fails (PoolTimeout) rather
    # than queueing without bound; ami.main.database checks each connection handed out.
    _default_db["OPTIONS"]["pool"] = {"min_size": 2, "max_size": DB_POOL_MAX_SIZE, "timeout": 10}
_log_db = {
    **_default_db,
    "AUTOCOMMIT": True,
    "OPTIONS": {
        **_default_db.get("OPTIONS", {}),
        "options": f"-c lock_timeout={LOG_DB_LOCK_TIMEOUT_MS}",
        "application_name": f"{APP_NAME}-joblog",
    },
    "TEST": {"MIRROR": "default"},
}
DATABASES = {"default": _default_db, "logs": _log_db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# -- Messaging --------------------------------------------------------------------------------
# One NATS server, or a cluster's servers comma-separated (split by nats.server_urls).
NATS_URL = _required_url("NATS_URL")
REDIS_URL = _required_url("REDIS_URL")
# The shared cache: rate-limit counters every web process must see alike.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "ami-cache",
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "jobs"
CELERY_TASK_ROUTES = {
    "ami.ml.tasks.save_results": {"queue": "ml_results"},
    "ami.ml.tasks.process_nats_pipeline_result": {"queue": "ml_results"},
}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A result task is acknowledged to Redis only after it ran, and re-queued if its worker
# process dies, so a killed worker never loses a result (saving is idempotent).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_SOFT_TIME_LIMIT = float(os.environ.get("AMI_TASK_SOFT_TIME_LIMIT", "300"))  # seconds
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 60  # seconds
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# A task taken by a worker that then vanished (its host died, SIGKILL of the whole worker)
# stays unacknowledged in Redis; any running worker puts it back on its queue once it has
# been unacknowledged for the visibility timeout, looking every restore interval. So a lost
# task runs again after at most timeout + interval seconds: longer than any task may run
# (else a slow task would run twice at once), shorter than the stale-job window (else the
# stale check closes a job whose start is only lost). `ami check` verifies both (jobs.E005).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("AMI_BROKER_VISIBILITY_TIMEOUT", "450")),  # s
    "unacked_restore_interval": int(os.environ.get("AMI_BROKER_RESTORE_INTERVAL", "10")),  # s
    "unacked_restore_throttle": 1,  # scan on every sweep (kombu's default scans every 10th)
}

# -- API ----------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Rates for the throttles that name these scopes (per client address or service).
    "DEFAULT_THROTTLE_RATES": {
        "login": os.environ.get("AMI_LOGIN_RATE", "10/min"),
        "service": os.environ.get("AMI_SERVICE_RATE", "1200/min"),  # per processing service
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR.parent / ".run" / "static"
MEDIA_ROOT = Path(os.environ.get("AMI_MEDIA_ROOT", BASE_DIR.parent / ".run" / "media"))
MEDIA_URL = "media/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("AMI_LOG_LEVEL", "INFO")},
}

# -- Job log (docs/logging.md) -----------------------------------------------------------------
# One setting, like CACHES: {"BACKEND", "OPTIONS", "DUAL_WRITE", "LEVEL", "FLUSH_TIMEOUT",
# "RETENTION", "RETENTION_INTERVAL", "PARTITION"}, built from the environment variables the
# operator set (JOB_LOG_BACKEND, JOB_LOG_BUFFER_INTERVAL, AMI_JOB_LOG_RETENTION...) and only
# those: a key left out takes its default in ami/jobs/logging/config.py, a backend option the
# backend's.
# Types and ranges: ami/jobs/logging/validation.py (system check and every process's startup).
JOB_LOGS = job_log_config.from_environ(os.environ)

# -- ML pipeline: NATS tasks, processing services, stale-job check (ami.ml) ---------------------
# Streams and subjects are namespaced (default: by the database's name), so jobs of different
# databases (the dev database and the test database, say) never share a stream.
NATS_NAMESPACE = os.environ.get("AMI_NATS_NAMESPACE", "")
NATS_TASK_ACK_WAIT = float(os.environ.get("AMI_NATS_ACK_WAIT", "300"))  # seconds
NATS_TASK_MAX_DELIVER = int(os.environ.get("AMI_NATS_MAX_DELIVER", "5"))
NATS_REQUEST_TIMEOUT = float(os.environ.get("AMI_NATS_REQUEST_TIMEOUT", "5"))  # seconds
NATS_RESERVE_WAIT = float(os.environ.get("AMI_NATS_RESERVE_WAIT", "1"))  # seconds
# On a cluster: copies of each job's stream (3 rides out the loss of a node; at most the
# node count), and how long a call interrupted by a leader election keeps retrying.
NATS_REPLICAS = int(os.environ.get("AMI_NATS_REPLICAS", "1"))
NATS_FAILOVER_TIMEOUT = float(os.environ.get("AMI_NATS_FAILOVER_TIMEOUT", "15"))  # seconds
SERVICE_LOG_RATE = os.environ.get("AMI_SERVICE_LOG_RATE", "600/min")  # log posts per service
PROCESSING_MAX_BATCH = int(os.environ.get("AMI_PROCESSING_MAX_BATCH", "100"))  # tasks per call
# A posted batch of results is saved by one Celery task per this many results (or per
# RESULT_TASK_MAX_BYTES of their JSON, whichever comes first): one transaction each.
RESULT_TASK_MAX_RESULTS = int(os.environ.get("AMI_RESULT_TASK_MAX_RESULTS", "50"))
RESULT_TASK_MAX_BYTES = int(os.environ.get("AMI_RESULT_TASK_MAX_BYTES", str(4 * 2**20)))
IMAGE_URL_MAX_AGE = int(os.environ.get("AMI_IMAGE_URL_MAX_AGE", "86400"))  # seconds
JOB_STALE_AFTER = int(os.environ.get("AMI_JOB_STALE_AFTER", "900"))  # seconds without heartbeat
JOB_STALE_CHECK_INTERVAL = float(os.environ.get("AMI_JOB_STALE_CHECK_INTERVAL", "60"))  # seconds
RESULT_TASK_MAX_RETRIES = int(os.environ.get("AMI_RESULT_TASK_MAX_RETRIES", "8"))
# Bounds row-lock waits while saving a result (then: retry with backoff). Keep it well
# under the Celery soft time limit.
RESULT_LOCK_TIMEOUT_MS = int(os.environ.get("AMI_RESULT_LOCK_TIMEOUT_MS", "30000"))
CELERY_BEAT_SCHEDULE = {
    **globals().get("CELERY_BEAT_SCHEDULE", {}),
    "check-stale-jobs": {
        "task": "ami.ml.tasks.check_stale_jobs",
        "schedule": JOB_STALE_CHECK_INTERVAL,
        "options": {"queue": "jobs"},
    },
    "prepare-job-log-partitions": {
        "task": "ami.jobs.tasks.prepare_job_log_partitions",
        "schedule": 3600.0,
        "options": {"queue": "jobs"},
    },
    "prune-job-logs": {
        "task": "ami.jobs.tasks.prune_job_logs",
        "schedule": job_log_config.resolve(JOB_LOGS)["RETENTION_INTERVAL"],
        "options": {"queue": "jobs"},
    },
    # The redis job log backend: lines a dead writer left in Redis (a no-op otherwise).
    "drain-job-log-streams": {
        "task": "ami.jobs.tasks.drain_job_log_streams",
        "schedule": job_log_config.resolve(JOB_LOGS)["DRAIN_INTERVAL"],
        "options": {"queue": "jobs", "expires": job_log_config.resolve(JOB_LOGS)["DRAIN_INTERVAL"]},
    },
}

# -- API and web pages (jobs API, log read path, live pages) -----------------------------------
INSTALLED_APPS += ["drf_spectacular", "drf_spectacular_sidecar"]
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}
SPECTACULAR_SETTINGS = {
    "TITLE": "AMI jobs API",
    "DESCRIPTION": "Projects, images, pipelines, jobs and their logs.",
    "VERSION": "1",
    # The docs page's Swagger UI comes from the installed package, not from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "ami.jobs.api.schema.add_streamed_log_paths",
    ],
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "ami.jobs.states.JobStatus",
        "StageStatusEnum": "ami.jobs.states.StageStatus",
    },
}
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/jobs/"
API_LOG_PAGE_DEFAULT = 100  # lines per /logs page
API_LOG_PAGE_MAX = 1000
# Streams poll every API_SSE_POLL_SECONDS only while their process has no LISTEN connection
# (ami.jobs.api.wakeups); with one, they are woken by NOTIFY and look on their own only this
# often, as a safety net.
API_SSE_POLL_SECONDS = float(os.environ.get("AMI_SSE_POLL_SECONDS", "0.25"))
API_SSE_FALLBACK_POLL_SECONDS = float(os.environ.get("AMI_SSE_FALLBACK_POLL_SECONDS", "5"))
# Off: no LISTEN connection, streams poll as before (the triggers still notify; nobody listens).
API_SSE_PUSH = _env_bool("AMI_SSE_PUSH", True)
API_SSE_HEARTBEAT_SECONDS = float(os.environ.get("AMI_SSE_HEARTBEAT_SECONDS", "15"))
# The pages' JS and CSS are served by Django itself (no separate static server needed).
SERVE_STATIC = _env_bool("AMI_SERVE_STATIC", True)
