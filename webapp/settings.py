"""All settings, read from the environment in this one module, with defaults that run locally and
loud errors for bad values. `DATABASE_URL` / `REDIS_URL` select real services; when they are unset,
the URLs of the embedded PostgreSQL/Redis that `make run` started are read from var/embedded.json."""
import json
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from ml.trackers import TrackerError, parse_report_to

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("DISTILLERY_VAR_DIR", BASE_DIR / "var")).resolve()


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no).")


def _env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be >= {minimum}.")
    return value


def _embedded(key: str) -> str | None:
    path = VAR_DIR / "embedded.json"
    if not path.exists():
        return None
    return json.loads(path.read_text()).get(key)


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or "distillery-local-dev-key-change-me-in-production"
DEBUG = _env_bool("DJANGO_DEBUG", True)
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "*" if DEBUG else "").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o]
if not DEBUG and SECRET_KEY.startswith("distillery-local"):
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.")
if not DEBUG and (not ALLOWED_HOSTS or "*" in ALLOWED_HOSTS):
    # A wildcard host accepts forged Host headers (password-reset links, cache keys) in production.
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must name this server's host names (comma-separated, no '*') "
                               "when DJANGO_DEBUG is off, e.g. DJANGO_ALLOWED_HOSTS=distillery.example.org.")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "channels",
    "ninja",  # the API docs page's static files (webapp/api)
    "webapp.projects",
    "webapp.catalog",
    "webapp.generation",
    "webapp.annotation",
    "webapp.training",
    "webapp.evaluation",
    "webapp.health",
    "webapp.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "webapp.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "webapp.urls"
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
                "webapp.health.context_processors.worker_status",
            ],
        },
    },
]
ASGI_APPLICATION = "webapp.asgi.application"
# Threads per web server process running requests (each waits on PostgreSQL part of the time).
HTTP_THREADS = _env_int("DISTILLERY_HTTP_THREADS", 8, minimum=1)
WSGI_APPLICATION = None

DATABASE_URL = os.environ.get("DATABASE_URL") or _embedded("database_url")
# True on the embedded default: the database is the one `make run` started in var/ (local only).
EMBEDDED_SERVICES = bool(DATABASE_URL) and DATABASE_URL == _embedded("database_url")
if DATABASE_URL:
    # Under ASGI every request runs in its own thread; persistent per-thread connections would exhaust
    # PostgreSQL, so connections come from psycopg's pool instead (CONN_MAX_AGE must then be 0).
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
    if _env_bool("DISTILLERY_DB_POOL", True):
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": _env_int("DISTILLERY_DB_POOL_MIN", 2, minimum=0),
            "max_size": _env_int("DISTILLERY_DB_POOL_MAX", 20, minimum=1),
        }
    if not DATABASES["default"]["ENGINE"].endswith("postgresql"):
        raise ImproperlyConfigured(f"DATABASE_URL must be a PostgreSQL URL, got {DATABASE_URL!r}.")
else:
    # No database configured: the dummy backend fails on first use with Django's own clear error;
    # `make run` and the test setup both provide a real PostgreSQL.
    DATABASES = {"default": {"ENGINE": "django.db.backends.dummy"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL") or _embedded("redis_url") or "redis://127.0.0.1:6379/0"
CHANNEL_LAYERS = {
    "default": {
        # Redis pub/sub: a group message is one PUBLISH fanned out by Redis, where the core layer writes
        # one list entry per member (measured: 100 viewers p95 34-47 ms against 106-108 ms; see
        # docs/benchmarks.md). Live events are at-most-once either way: sockets catch up from the
        # database snapshot on (re)connect.
        # socket_timeout None: redis-py 8's 5 s default would cut the layer's blocking reads.
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": None}]},
    }
}

# Sessions and project memberships are read on every request: cached in Redis (shared by every web
# process, so a logout or a role change is seen everywhere at once), sessions backed by the database.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "shared": {"BACKEND": "webapp.shared_cache.SharedRedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": "distillery",
               "TIMEOUT": 300},
}
SESSION_ENGINE = "webapp.shared_cache"  # Django's cached_db sessions on one Redis client per process
SESSION_CACHE_ALIAS = "shared"

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = False  # long runs are claimed in the database, not by late acks (DESIGN.md)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ROUTES = {"workers.tasks.gpu.*": {"queue": "gpu"}}
CELERY_BEAT_SCHEDULE = {
    "reap-stale-runs": {"task": "workers.tasks.maintenance.reap_stale_runs", "schedule": 30.0},
}
WORKER_HEARTBEAT_SECONDS = _env_int("DISTILLERY_WORKER_HEARTBEAT_SECONDS", 5, minimum=1)
RUN_STALE_AFTER_SECONDS = _env_int("DISTILLERY_RUN_STALE_AFTER_SECONDS", 90, minimum=5)
# Every other job kind (generation, judge, evaluation, loop round, GGUF conversion) beats from a
# thread while it works (webapp.lifecycle.JobBeat); its grace also covers a slow database.
JOB_STALE_AFTER_SECONDS = _env_int("DISTILLERY_JOB_STALE_AFTER_SECONDS", 120, minimum=5)
# Human verdicts on an evaluation refit its win rates at most once per this many seconds (debounced).
EVALUATION_REFRESH_DELAY_SECONDS = _env_int("DISTILLERY_EVALUATION_REFRESH_DELAY_SECONDS", 5, minimum=1)

# The gpu workers' generation backend (ml.backends): "hf" (default), "vllm" (CUDA hosts with the vllm
# wheel) or "auto" (vLLM where it can run). Only workers act on it; the web process imports no backend.
GENERATION_BACKEND = os.environ.get("DISTILLERY_GENERATION_BACKEND", "hf").strip().lower() or "hf"
if GENERATION_BACKEND not in ("hf", "vllm", "auto"):
    raise ImproperlyConfigured(f"DISTILLERY_GENERATION_BACKEND={GENERATION_BACKEND!r}: use hf, vllm or auto")

# Where model versions, checkpoints, teacher-signal caches and uploads live.
DATA_DIR = Path(os.environ.get("DISTILLERY_DATA_DIR", VAR_DIR / "data")).resolve()
# Experiment trackers every training run reports to (ml.trackers, through the trainers' report_to):
# comma-separated tensorboard, mlflow, wandb, trackio; "" or "none" = none. A run may override it (its
# report_to field). Only the gpu workers need the tracker's library (mlflow-skinny, tensorboard, ...).
try:
    REPORT_TO = ",".join(parse_report_to(os.environ.get("DISTILLERY_REPORT_TO", "")))
except TrackerError as exc:
    raise ImproperlyConfigured(f"DISTILLERY_REPORT_TO: {exc}") from None
# Tracker files (TensorBoard events, W&B offline runs, the default MLflow file store): one folder per run.
TRACKING_DIR = Path(os.environ.get("DISTILLERY_TRACKING_DIR", DATA_DIR / "tracking")).resolve()
# MLflow's own variable: a tracking server (http://...) or store URI; empty = a file store in TRACKING_DIR.
MLFLOW_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
# The MLflow UI's base URL, for the run page's link (defaults to MLFLOW_TRACKING_URI when that is http).
MLFLOW_UI_URL = os.environ.get("DISTILLERY_MLFLOW_UI_URL", "").strip()
DEMO_DIR = Path(os.environ.get("DISTILLERY_DEMO_DIR", VAR_DIR / "demo")).resolve()
# Where a researcher may register local model directories from (os.pathsep- or comma-separated):
# anything else on the server's disk, such as another project's checkpoints, stays out of reach.
MODEL_ROOTS = [Path(p).expanduser().resolve() for p in
               os.environ.get("DISTILLERY_MODEL_ROOTS", f"{DATA_DIR},{DEMO_DIR}").replace(os.pathsep, ",").split(",")
               if p.strip()]
# Hosts (host or host:port, comma-separated) an OpenAI-compatible endpoint may be registered on, like
# MODEL_ROOTS for directories: the server never sends requests (with a key) to any other host, so a
# researcher cannot make it probe internal services. Empty (the default): endpoints are off.
ENDPOINT_HOSTS = [h.strip().lower() for h in os.environ.get("DISTILLERY_ENDPOINT_HOSTS", "").split(",") if h.strip()]
if "*" in ENDPOINT_HOSTS:
    raise ImproperlyConfigured("DISTILLERY_ENDPOINT_HOSTS must list host names (host or host:port), not '*'.")
# Requests a minute per API token (webapp/api/access.py), counted in the shared Redis cache; 0 = no limit.
API_RATE_LIMIT = _env_int("DISTILLERY_API_RATE_LIMIT", 600)
MAX_UPLOAD_BYTES = _env_int("DISTILLERY_MAX_UPLOAD_BYTES", 50 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES

# Django's four validators: every path that sets a password (sign-up by invite, the members page,
# bootstrap_demo's --password, changepassword) runs them.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if os.environ.get("DISTILLERY_PASSWORD_HASHERS"):  # tests use a fast hasher in every process
    PASSWORD_HASHERS = os.environ["DISTILLERY_PASSWORD_HASHERS"].split(",")
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "project_list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
# `make run` serves with DEBUG off (webapp/launcher.py): static files then come from the app and
# static/ folders directly, as under DEBUG, so no collectstatic step is needed on the embedded default.
WHITENOISE_USE_FINDERS = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DISTILLERY_LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}, "daphne": {"level": "WARNING"}},
}
