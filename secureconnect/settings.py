"""Settings for the SecureConnect video service, read from the environment here and nowhere else.

Every variable is listed in README.md's configuration table and in .env.example.
"""

from pathlib import Path

from secureconnect import config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

ENV = config.get_choice("ENV", ("development", "production"), "development")
IS_PRODUCTION = ENV == "production"
DEBUG = config.get_bool("DEBUG", not IS_PRODUCTION)

SECRET_KEY = config.get_str("SECRET_KEY", config.INSECURE_SECRET_KEY)
JWT_SECRET = config.get_str("JWT_SECRET", "" if IS_PRODUCTION else "development-jwt-secret-change-me-0123456789")
if IS_PRODUCTION:
    config.require_production_secret("SECRET_KEY", SECRET_KEY, weak_values=(config.INSECURE_SECRET_KEY,), min_length=32)
    config.require_production_secret("JWT_SECRET", JWT_SECRET, min_length=config.MIN_JWT_SECRET_LENGTH)

ALLOWED_HOSTS = config.get_list(
    "ALLOWED_HOSTS", [] if IS_PRODUCTION else ["127.0.0.1", "localhost", "[::1]", "testserver"]
)
CORS_ALLOWED_ORIGINS = config.get_list("CORS_ALLOWED_ORIGINS")
CSRF_TRUSTED_ORIGINS = CORS_ALLOWED_ORIGINS
REDIS_URL = config.get_str("REDIS_URL")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "accounts",
    "calls",
    "signaling",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
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

# --- Database -----------------------------------------------------------------------------------
DATABASES = {"default": config.database_config(base_dir=BASE_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# django-cockroachdb reports anonymous usage to Cockroach Labs unless told not to.
DISABLE_COCKROACHDB_TELEMETRY = config.get_bool("DISABLE_COCKROACHDB_TELEMETRY", True)

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise serves from here once collected

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": config.get_str("LOG_LEVEL", "INFO").upper()},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- REST API, authentication and JWT (accounts/, secureconnect/api/) ----------------------------

# --- Call rules (calls/) -----------------------------------------------------------------------

# --- Persistence: start-up check, limited mode, spool, transaction retries (calls/persistence/) --

# --- Signaling and channel layer (signaling/) --------------------------------------------------

# --- Push notifications (accounts/push/) --------------------------------------------------------
