"""Settings for the SecureConnect video service, read from the environment here and nowhere else.

Every variable is listed in README.md's configuration table and in .env.example.
"""

import os
import re
import zoneinfo
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from secureconnect import config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

ENV = config.get_choice("ENV", ("development", "production"), "development")
IS_PRODUCTION = ENV == "production"
DEBUG = config.get_bool("DEBUG", not IS_PRODUCTION)

SECRET_KEY = config.get_str("SECRET_KEY", config.INSECURE_SECRET_KEY)
JWT_SECRET = config.get_str("JWT_SECRET", "" if IS_PRODUCTION else config.DEVELOPMENT_JWT_SECRET)
if IS_PRODUCTION:
    config.require_production_secret(
        "SECRET_KEY", SECRET_KEY, weak_values=(config.INSECURE_SECRET_KEY,), min_length=config.MIN_SECRET_KEY_LENGTH
    )
    config.require_production_secret("JWT_SECRET", JWT_SECRET, min_length=config.MIN_JWT_SECRET_LENGTH)

ALLOWED_HOSTS = config.get_list(
    "ALLOWED_HOSTS", [] if IS_PRODUCTION else ["127.0.0.1", "localhost", "[::1]", "testserver"]
)
CORS_ALLOWED_ORIGINS = config.get_list("CORS_ALLOWED_ORIGINS")
CSRF_TRUSTED_ORIGINS = CORS_ALLOWED_ORIGINS
REDIS_URL = config.redis_url()  # with the password of REDIS_PASSWORD(_FILE): never log it

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from this service (/v1/docs)
    "accounts",
    "push",  # before calls and signaling, as when it lived in accounts: its listener subscribes first
    "calls",
    "signaling",
    "webclient",  # the browser call client at /app/ (static files under webclient/static/)
]

MIDDLEWARE = [
    "secureconnect.api.middleware.RequestIdMiddleware",  # first: every log line and response has the id
    "secureconnect.api.middleware.ApiErrorMiddleware",  # then: body cap and JSON errors on API paths
    "django.middleware.security.SecurityMiddleware",
    "core.security.ContentSecurityPolicyMiddleware",  # the admin and /v1/docs
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "secureconnect.middleware.AdminTimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "secureconnect.urls"
WSGI_APPLICATION = "secureconnect.wsgi.application"
ASGI_APPLICATION = "secureconnect.asgi.application"

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
            ],
        },
    },
]

# --- Production server (python -m secureconnect.server; secureconnect/server/) -------------------
# The server behind `python -m secureconnect.server` (secureconnect/server/): uvicorn on uvloop and
# httptools, or daphne (Twisted); both hold the limits below.
SERVER_IMPLEMENTATION = config.get_choice("SERVER_IMPLEMENTATION", ("uvicorn", "daphne"), "uvicorn")
SERVER_HOST = config.get_str("SERVER_HOST", "127.0.0.1")  # the Dockerfile and compose pass --bind 0.0.0.0
SERVER_PORT = config.get_int("SERVER_PORT", 8083, minimum=1)
# Worker processes of the production server, each on its own SO_REUSEPORT socket (issue 16). Default:
# one per core with a Redis channel layer; 1 without (the in-memory layer spans one process).
SERVER_WORKERS = config.get_int("SERVER_WORKERS", (os.cpu_count() or 1) if REDIS_URL else 1, minimum=1)
# HTTP requests whose sync code (middleware, view) runs at once per process; more wait their turn
# on the loop (secureconnect/request_threads.py). Probes and /metrics never wait.
SERVER_THREADS = config.get_int("SERVER_THREADS", 8, minimum=1)
# Seconds a connection may take to send a request's complete headers (slow clients hold a socket).
HTTP_HEADER_TIMEOUT = config.get_float("HTTP_HEADER_TIMEOUT", 10.0, minimum=0.1)
# Protocol-level WebSocket keepalive: a ping every WS_PING_INTERVAL seconds; a socket whose ping
# is not answered within WS_PING_TIMEOUT seconds is dropped (the application sees 4408).
WS_PING_INTERVAL = config.get_float("WS_PING_INTERVAL", 10.0, minimum=0.1)
WS_PING_TIMEOUT = config.get_float("WS_PING_TIMEOUT", 20.0, minimum=0.1)

# --- Database -----------------------------------------------------------------------------------
# A bounded pool of connections per process, reused across requests (secureconnect/db/pool.py).
DATABASES = {"default": config.with_connection_pool(config.database_config(base_dir=BASE_DIR))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# django-cockroachdb reports anonymous usage to Cockroach Labs unless told not to.
DISABLE_COCKROACHDB_TELEMETRY = config.get_bool("DISABLE_COCKROACHDB_TELEMETRY", True)

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "accounts.password_validation.PasswordVarietyValidator"},
]


def _time_zone(name: str, default: str) -> str:
    """An IANA time zone name such as ``Europe/Berlin``, checked here so that a typo stops start-up."""
    value = config.get_str(name, default)
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(
            f"{name} must be an IANA time zone such as UTC or Europe/Berlin, not {value!r}"
        ) from None
    return value


LANGUAGE_CODE = "en-us"
# Stored times, the API, push payloads, commands and logs are UTC. The admin shows times in
# ADMIN_TIME_ZONE (the TIME_ZONE variable; secureconnect/middleware.py), always with seconds and
# the zone's name (secureconnect/formats/).
TIME_ZONE = "UTC"
ADMIN_TIME_ZONE = _time_zone("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
FORMAT_MODULE_PATH = ["secureconnect.formats"]

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise serves from here once collected

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "core.api.request_id.RequestIdLogFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request_id"]}},
    "root": {"handlers": ["console"], "level": config.get_str("LOG_LEVEL", "INFO").upper()},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- REST API, authentication and JWT (accounts/, secureconnect/api/) ----------------------------
JWT_ACCESS_TTL = config.get_int("JWT_ACCESS_TTL", 15 * 60, minimum=1)  # seconds
JWT_REFRESH_TTL = config.get_int("JWT_REFRESH_TTL", 30 * 24 * 3600, minimum=1)  # seconds
# Bodies over this size are refused with 413 (PAYLOAD_TOO_LARGE on the API).
DATA_UPLOAD_MAX_MEMORY_SIZE = config.get_int("MAX_REQUEST_BODY_BYTES", 64 * 1024, minimum=1024)

# The cache holds rate-limit counters and token revocations: shared by every process with Redis,
# per process without it.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "core.cache.RedisCache",
            "LOCATION": REDIS_URL,
            # Several deployments (or test runs) can share one Redis without reading each other's keys.
            "KEY_PREFIX": config.get_str("CACHE_KEY_PREFIX", "secureconnect"),
        }
    }
else:
    # One process, no Redis: the snapshot cache (calls.persistence.snapshot_cache) must hold every
    # live call and conversation, far more than LocMemCache's default of 300 entries.
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "OPTIONS": {"MAX_ENTRIES": 100_000}}
    }


def _throttle_rate(name: str, default: str) -> str:
    """A DRF rate such as ``10/min``, checked here so that a typo stops start-up."""
    rate = config.get_str(name, default)
    if not re.fullmatch(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)", rate):
        raise ImproperlyConfigured(f"{name} must be a rate such as 10/min (per s, min, hour or day), not {rate!r}")
    return rate


REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["core.api.renderers.EnvelopeJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.api.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "core.api.renderers.FallbackContentNegotiation",
    "EXCEPTION_HANDLER": "secureconnect.api.exception_handler.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["core.api.throttles.UserThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "user": _throttle_rate("THROTTLE_USER", "600/min"),
        "call_initiate": _throttle_rate("THROTTLE_CALL_INITIATE", "10/min"),
        # Failed logins per (account, address) and per address; per account from all addresses.
        "login": _throttle_rate("THROTTLE_LOGIN", "5/min"),
        "login_account": _throttle_rate("THROTTLE_LOGIN_ACCOUNT", "20/min"),
        "refresh": _throttle_rate("THROTTLE_REFRESH", "30/min"),
        "register": _throttle_rate("THROTTLE_REGISTER", "20/hour"),
        "user_lookup": _throttle_rate("THROTTLE_USER_LOOKUP", "30/min"),
    },
    # Proxies in front of the service; the client address is read from X-Forwarded-For that many
    # hops from the right (0: the socket's peer, and X-Forwarded-For is ignored).
    "NUM_PROXIES": config.get_int("NUM_PROXIES", 0, minimum=0),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SecureConnect video service API",
    "DESCRIPTION": "Calls, conversations and accounts. Every answer is in the envelope described in README.md.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "secureconnect.api.schema.wrap_responses_in_envelope",
    ],
    # A call's end_reason and a participant's leave_reason share one set of values: one name.
    "ENUM_NAME_OVERRIDES": {"EndReasonEnum": "calls.models.Call.EndReason"},
}

# --- Call rules (calls/) -----------------------------------------------------------------------
MAX_CALL_PARTICIPANTS = config.get_int("MAX_CALL_PARTICIPANTS", 4, minimum=2)
CALL_RING_TIMEOUT = config.get_int("CALL_RING_TIMEOUT", 60, minimum=1)
CALL_EXPIRY_INTERVAL = config.get_float("CALL_EXPIRY_INTERVAL", 5.0, minimum=0.1)
STUN_URLS = config.get_list("STUN_URLS")
TURN_URLS = config.get_list("TURN_URLS")
TURN_SECRET = config.get_list("TURN_SECRET")  # several for rotation: the first signs
TURN_TTL = config.get_int("TURN_TTL", 600, minimum=60)

# --- Persistence: start-up check, limited mode, spool, transaction retries (calls/persistence/) --
DB_STARTUP_MODE = config.get_choice("DB_STARTUP_MODE", ("background", "blocking", "off"), "background")
DB_CONNECT_MAX_TRIES = config.get_int("DB_CONNECT_MAX_TRIES", 5, minimum=1)
DB_CONNECT_BASE_DELAY = config.get_float("DB_CONNECT_BASE_DELAY", 1.0, minimum=0)
DB_CONNECT_MAX_DELAY = config.get_float("DB_CONNECT_MAX_DELAY", 30.0, minimum=0)
DB_CONNECT_TIMEOUT = config.get_int("DB_CONNECT_TIMEOUT", 5, minimum=1)
DB_PROBE_MAX_DELAY = config.get_float("DB_PROBE_MAX_DELAY", 2.0, minimum=0.05)
SPOOL_PATH = Path(config.get_str("SPOOL_PATH", str(VAR_DIR / "spool.sqlite3")))
SPOOL_MAX_BYTES = config.get_int("SPOOL_MAX_BYTES", 256 * 1024 * 1024, minimum=1024)
SPOOL_MAX_AGE = config.get_float("SPOOL_MAX_AGE", 7 * 24 * 3600, minimum=1)
TX_RETRY_MAX_ATTEMPTS = config.get_int("TX_RETRY_MAX_ATTEMPTS", 6, minimum=1)
TX_RETRY_BASE_DELAY = config.get_float("TX_RETRY_BASE_DELAY", 0.02, minimum=0)
PERSISTENCE_RETRY_AFTER = config.get_int("PERSISTENCE_RETRY_AFTER", 5, minimum=1)
if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    # A refused or black-holed database must fail a request in seconds, not hang it.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", DB_CONNECT_TIMEOUT)

# --- Signaling and channel layer (signaling/) --------------------------------------------------
WS_MAX_SIGNALING_CONNECTIONS = config.get_int("WS_MAX_SIGNALING_CONNECTIONS", 1000, minimum=1)  # per process
WS_MAX_EVENTS_CONNECTIONS = config.get_int("WS_MAX_EVENTS_CONNECTIONS", 10000, minimum=1)  # per process
WS_RATE_LIMIT = config.get_float("WS_RATE_LIMIT", 50.0, minimum=1)  # messages per second per socket
WS_RATE_BURST = config.get_int("WS_RATE_BURST", 200, minimum=1)
WS_MAX_SIGNALING_PER_USER = config.get_int("WS_MAX_SIGNALING_PER_USER", 10, minimum=1)  # per process
WS_MAX_EVENTS_PER_USER = config.get_int("WS_MAX_EVENTS_PER_USER", 10, minimum=1)  # per process
# Keepalive is the production server's protocol pings (WS_PING_INTERVAL, WS_PING_TIMEOUT above):
# application silence closes nothing.
# Presence (calls/presence.py): a socket's entry expires PRESENCE_TTL seconds after its instance
# last renewed it (every third of that), so the sockets of a dead instance go by themselves.
PRESENCE_TTL = config.get_float("PRESENCE_TTL", 15.0, minimum=0.3)
# A joined participant whose last socket drops has this long to come back (a resume).
CALL_RECONNECT_GRACE = config.get_float("CALL_RECONNECT_GRACE", 20.0, minimum=0.1)
# An answered call that no participant connects to ends (connection_lost) after this long.
CALL_CONNECT_TIMEOUT = config.get_float("CALL_CONNECT_TIMEOUT", 60.0, minimum=0.1)
# What an instance holds for a participant during the gap, at most.
RESUME_BUFFER_MESSAGES = config.get_int("RESUME_BUFFER_MESSAGES", 500, minimum=1)
RESUME_BUFFER_BYTES = config.get_int("RESUME_BUFFER_BYTES", 1024 * 1024, minimum=1024)
# Each socket's buffer in this process holds this many messages (the pub/sub layer; the core
# layer's single queue per process in Redis has the same bound); past it the oldest is dropped
# and counted in /metrics as secureconnect_channel_layer_dropped_messages.
CHANNEL_LAYER_CAPACITY = config.get_int("CHANNEL_LAYER_CAPACITY", 10000, minimum=100)
# Seconds a message may wait in Redis (core layer only; pub/sub keeps nothing in Redis).
CHANNEL_LAYER_EXPIRY = config.get_int("CHANNEL_LAYER_EXPIRY", 60, minimum=1)
CHANNEL_LAYER_PREFIX = config.get_str("CHANNEL_LAYER_PREFIX", "secureconnect")
# The channel layer's Redis servers: CHANNEL_LAYER_REDIS_URLS (comma-separated shards; a call's
# groups live on one shard), else REDIS_URL alone.
CHANNEL_LAYER_REDIS_URLS = config.channel_layer_redis_urls(REDIS_URL)
# pubsub (default): signaling.layers.PubSubChannelLayer. core: channels_redis's core layer, kept
# for comparison (bench/relay) and as a fallback; it shards too (channels_redis's ``hosts``).
CHANNEL_LAYER_BACKEND = config.get_choice("CHANNEL_LAYER_BACKEND", ("pubsub", "core"), "pubsub")
# Fail in seconds when Redis is away (socket_timeout must exceed the core layer's 5 s BZPOPMIN).
CHANNEL_LAYER_HOSTS = [
    {"address": url, "socket_connect_timeout": 2, "socket_timeout": 10} for url in CHANNEL_LAYER_REDIS_URLS
]
if CHANNEL_LAYER_REDIS_URLS and CHANNEL_LAYER_BACKEND == "pubsub":
    # Pub/sub: one PUBLISH per group_send and one subscriber connection per shard and process
    # (docs/benchmarks.md, "Relay"). Pub/sub keeps nothing for a subscriber whose connection is
    # down, so the layer closes the sockets of a lost connection with 4503 instead of letting
    # them miss messages silently (signaling.layers.PubSubChannelLayer).
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "signaling.layers.PubSubChannelLayer",
            "CONFIG": {
                "hosts": CHANNEL_LAYER_HOSTS,
                "prefix": CHANNEL_LAYER_PREFIX,
                "capacity": CHANNEL_LAYER_CAPACITY,
            },
        }
    }
elif CHANNEL_LAYER_REDIS_URLS:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "signaling.layers.CountingRedisChannelLayer",
            "CONFIG": {
                "hosts": CHANNEL_LAYER_HOSTS,
                "prefix": CHANNEL_LAYER_PREFIX,
                "capacity": CHANNEL_LAYER_CAPACITY,
                "expiry": CHANNEL_LAYER_EXPIRY,
            },
        }
    }
else:
    # In memory: one process only (sockets on another process never hear each other).
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "signaling.layers.CountingInMemoryChannelLayer",
            "CONFIG": {"capacity": CHANNEL_LAYER_CAPACITY, "expiry": CHANNEL_LAYER_EXPIRY},
        }
    }

# --- Push notifications (push/) --------------------------------------------------------
FIREBASE_PROJECT_ID = config.get_str("FIREBASE_PROJECT_ID")
FIREBASE_CREDENTIALS_PATH = config.get_str("FIREBASE_CREDENTIALS_PATH")
GOOGLE_APPLICATION_CREDENTIALS = config.get_str("GOOGLE_APPLICATION_CREDENTIALS")
# Firebase is switched on by its variables; without them development logs what it would send.
PUSH_PROVIDER = config.get_choice(
    "PUSH_PROVIDER",
    ("firebase", "log", "none"),
    "firebase" if FIREBASE_PROJECT_ID or FIREBASE_CREDENTIALS_PATH else ("none" if IS_PRODUCTION else "log"),
)
PUSH_WORKERS = config.get_int("PUSH_WORKERS", 4, minimum=1)
PUSH_QUEUE_LIMIT = config.get_int("PUSH_QUEUE_LIMIT", 1000, minimum=1)
PUSH_RETRY_ATTEMPTS = config.get_int("PUSH_RETRY_ATTEMPTS", 4, minimum=1)
PUSH_RETRY_BASE_DELAY = config.get_float("PUSH_RETRY_BASE_DELAY", 0.5, minimum=0)
PUSH_RETRY_MAX_DELAY = config.get_float("PUSH_RETRY_MAX_DELAY", 8.0, minimum=0)

# --- Production hardening: refusals, transport security, operator endpoints (issue 14) -----------
METRICS_TOKEN = config.get_str("METRICS_TOKEN")  # bearer token for /metrics and /health/ready's report
if IS_PRODUCTION:
    config.refuse_insecure_production_settings(
        secrets={
            "SECRET_KEY": [SECRET_KEY],
            "JWT_SECRET": [JWT_SECRET],
            "METRICS_TOKEN": [METRICS_TOKEN] if METRICS_TOKEN else [],
            "TURN_SECRET": TURN_SECRET,
        },
        secret_key=SECRET_KEY,
        debug=DEBUG,
        allowed_hosts=ALLOWED_HOSTS,
    )

# Cookies only over https, HSTS and the redirect to https in production. /health and
# /health/ready stay reachable over plain HTTP for container and load-balancer health checks.
SESSION_COOKIE_SECURE = IS_PRODUCTION
CSRF_COOKIE_SECURE = IS_PRODUCTION
SECURE_HSTS_SECONDS = config.get_int("SECURE_HSTS_SECONDS", 31536000 if IS_PRODUCTION else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0  # names below the service's own host only
SECURE_SSL_REDIRECT = config.get_bool("SECURE_SSL_REDIRECT", IS_PRODUCTION)
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^health/ready$"]  # matched against the path without its "/"
if REST_FRAMEWORK["NUM_PROXIES"] > 0:
    # Only a proxy we were told about may say the client's connection was https (it must set,
    # not pass on, X-Forwarded-Proto: deploy/nginx/nginx.conf does).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

SPECTACULAR_SETTINGS |= {
    # Swagger UI from the installed drf-spectacular-sidecar, not a CDN; its init script is a file of
    # its own (SpectacularSwaggerSplitView) so that the page's CSP needs no inline script.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},  # no call to swagger.io
}
