"""Reading settings from the environment: the one place that knows how.

Every variable can also be given as ``NAME_FILE`` (Docker secrets). A bad value
raises ``ImproperlyConfigured`` with a message that names the variable, which
``manage.py`` and the ASGI entry point print as one line.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

# Weak values that must never reach production.
INSECURE_SECRET_KEY = "django-insecure-secureconnect-development-only"  # noqa: S105
MIN_JWT_SECRET_LENGTH = 32


def _read(name: str) -> str | None:
    """The raw value of NAME or the contents of NAME_FILE, stripped; None when unset."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(
                f"{name}_FILE points at {file_path!r}, which cannot be read: {exc.strerror}"
            ) from None
    value = os.environ.get(name)
    return value if value is None else value.strip()


def get_str(name: str, default: str = "") -> str:
    value = _read(name)
    return default if value in (None, "") else value


def get_bool(name: str, default: bool = False) -> bool:
    value = _read(name)
    if value in (None, ""):
        return default
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def get_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _read(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {number}")
    return number


def get_float(name: str, default: float, *, minimum: float | None = None) -> float:
    value = _read(name)
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {number}")
    return number


def get_list(name: str, default: list[str] | None = None) -> list[str]:
    """A comma-separated list; blanks are dropped."""
    value = _read(name)
    if value in (None, ""):
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def get_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = get_str(name, default).lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def database_config(*, base_dir: Path, conn_max_age: int = 0) -> dict:
    """The default database: DATABASE_URL, else the legacy DB_* variables, else SQLite.

    ``cockroach://`` selects django-cockroachdb, ``postgres://`` Django's PostgreSQL
    backend and ``sqlite:///path`` SQLite (dj-database-url maps the schemes).
    """
    url = get_str("DATABASE_URL")
    if url:
        return with_database_tls_files(parse_database_url(url, variable="DATABASE_URL", conn_max_age=conn_max_age))
    if get_str("DB_HOST"):
        return with_database_tls_files(
            parse_database_url(legacy_cockroach_url(), variable="DB_HOST", conn_max_age=conn_max_age)
        )
    sqlite_path = base_dir / "var" / "secureconnect.sqlite3"
    sqlite_path.parent.mkdir(parents=True, exist_ok=True)  # so a bare checkout runs
    return with_database_tls_files({"ENGINE": "django.db.backends.sqlite3", "NAME": str(sqlite_path)})


# The engines that take their connections from the process's pool (secureconnect/db/pool.py).
POOLED_ENGINES = {
    "django.db.backends.postgresql": "secureconnect.db.postgresql",
    "django_cockroachdb": "secureconnect.db.cockroachdb",
}


def with_connection_pool(config: dict) -> dict:
    """The database settings with a connection pool of ``DB_POOL_MAX_SIZE`` connections per
    process (default 10; 0 turns it off: a new connection per request), a request waiting up to
    ``DB_POOL_TIMEOUT`` seconds (default 5) for a free one. PostgreSQL and CockroachDB only."""
    max_size = get_int("DB_POOL_MAX_SIZE", 10, minimum=0)
    timeout = get_float("DB_POOL_TIMEOUT", 5.0, minimum=0.1)
    engine = POOLED_ENGINES.get(config["ENGINE"])
    if engine is None or max_size == 0:
        return config
    # CONN_MAX_AGE 0: Django "closes" at the end of each request, which gives the connection back.
    return {**config, "ENGINE": engine, "CONN_MAX_AGE": 0, "POOL": {"max_size": max_size, "timeout": timeout}}


def legacy_cockroach_url() -> str:
    """The URL the old deployment's DB_* variables describe (always CockroachDB)."""
    user = quote(get_str("DB_USER", "root"), safe="")
    password = _read("DB_PASSWORD") or ""
    credentials = f"{user}:{quote(password, safe='')}" if password else user
    host = get_str("DB_HOST")
    port = get_int("DB_PORT", 26257, minimum=1)
    name = quote(get_str("DB_NAME", "secureconnect"), safe="")
    sslmode = get_str("DB_SSLMODE", "disable")
    return f"cockroach://{credentials}@{host}:{port}/{name}?sslmode={quote(sslmode, safe='')}"


def parse_database_url(url: str, *, variable: str, conn_max_age: int = 0) -> dict:
    try:
        config = dj_database_url.parse(url, conn_max_age=conn_max_age)
    except (ValueError, dj_database_url.UnknownSchemeError) as exc:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        reason = f"unknown scheme {scheme!r}" if isinstance(exc, dj_database_url.UnknownSchemeError) else "unparsable"
        raise ImproperlyConfigured(
            f"{variable} is not a usable database URL ({reason}); expected cockroach://, postgres:// or sqlite:///"
        ) from None
    if config["ENGINE"] != "django.db.backends.sqlite3" and not config.get("NAME"):
        raise ImproperlyConfigured(f"{variable} names no database (add /<database> to the URL)")
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config.pop("CONN_HEALTH_CHECKS", None)
    return config


# --- Deployment: the database's TLS files and the Redis password ---------------------------------


def with_database_tls_files(config: dict) -> dict:
    """The database settings plus the TLS files named by ``DB_SSLROOTCERT``, ``DB_SSLCERT`` and
    ``DB_SSLKEY`` (paths), as libpq's ``sslrootcert``, ``sslcert`` and ``sslkey`` options.

    The same parameters may be in the URL's query instead; given in both places they must agree.
    A file that cannot be read, a certificate without its key, or an sslmode that may fall back
    to plain text (disable, allow, prefer) stop start-up: a typo never means an unverified link.
    """
    files = {
        "DB_SSLROOTCERT": ("sslrootcert", get_str("DB_SSLROOTCERT")),
        "DB_SSLCERT": ("sslcert", get_str("DB_SSLCERT")),
        "DB_SSLKEY": ("sslkey", get_str("DB_SSLKEY")),
    }
    given = {variable: (option, path) for variable, (option, path) in files.items() if path}
    if not given:
        return config
    if config["ENGINE"] == "django.db.backends.sqlite3":
        raise ImproperlyConfigured(f"{', '.join(given)} apply to CockroachDB and PostgreSQL, not SQLite")
    options = config.setdefault("OPTIONS", {})
    for variable, (option, path) in given.items():
        if options.get(option, path) != path:
            raise ImproperlyConfigured(f"{variable} and the {option} in the database URL differ; give one of them")
        if not (os.path.isfile(path) and os.access(path, os.R_OK)):
            raise ImproperlyConfigured(f"{variable} points at {path!r}, which is not a readable file")
        options[option] = path
    if bool(options.get("sslcert")) != bool(options.get("sslkey")):
        raise ImproperlyConfigured("DB_SSLCERT and DB_SSLKEY go together: a client certificate needs its key")
    if options.get("sslmode", "prefer") in ("disable", "allow", "prefer"):
        raise ImproperlyConfigured(f"{', '.join(given)} need TLS: set DB_SSLMODE (or sslmode) to verify-full")
    return config


def redis_url() -> str:
    """``REDIS_URL`` with the password of ``REDIS_PASSWORD`` (or ``REDIS_PASSWORD_FILE``, a Docker
    secret) in it, for the cache and the channel layer alike. Empty when Redis is not configured.

    The result holds the password: it is for connecting, never for logs or pages.
    """
    return _with_redis_password(get_str("REDIS_URL"), variable="REDIS_URL")


def channel_layer_redis_urls(default: str) -> list[str]:
    """The channel layer's Redis servers (shards): ``CHANNEL_LAYER_REDIS_URLS``, a comma-separated
    list, each with ``REDIS_PASSWORD`` applied like ``REDIS_URL``; without it, ``default``
    (``REDIS_URL``, one shard). Empty when neither is set."""
    urls = get_list("CHANNEL_LAYER_REDIS_URLS")
    if not urls:
        return [default] if default else []
    for url in urls:
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ImproperlyConfigured(f"CHANNEL_LAYER_REDIS_URLS: {url.split('@')[-1]!r} is not a redis:// URL")
    return [_with_redis_password(url, variable="CHANNEL_LAYER_REDIS_URLS") for url in urls]


def _with_redis_password(url: str, *, variable: str) -> str:
    password = _read("REDIS_PASSWORD") or ""
    if not password:
        return url
    if not url:
        raise ImproperlyConfigured(f"REDIS_PASSWORD is set but {variable} is not")
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ImproperlyConfigured(f"REDIS_PASSWORD needs a redis:// or rediss:// {variable}")
    userinfo, _, hostport = parts.netloc.rpartition("@")
    if ":" in userinfo:
        raise ImproperlyConfigured(f"{variable} has a password already; give it there or in REDIS_PASSWORD, not both")
    netloc = f"{userinfo}:{quote(password, safe='')}@{hostport}"
    return urlunsplit(parts._replace(netloc=netloc))


def require_production_secret(name: str, value: str, *, weak_values: tuple[str, ...] = (), min_length: int = 0) -> None:
    """Refuse to start in production with a missing or weak secret."""
    if not value or value in weak_values:
        raise ImproperlyConfigured(f"{name} must be set in production (or {name}_FILE)")
    if len(value) < min_length:
        raise ImproperlyConfigured(f"{name} must be at least {min_length} characters in production")


# --- Production refusals and transport security (issue 14) ----------------------------------------
# Secrets written in this repository are public: production refuses each of them by value.
DEVELOPMENT_JWT_SECRET = "development-jwt-secret-change-me-0123456789"  # noqa: S105
PUBLIC_SECRETS = frozenset(
    {
        INSECURE_SECRET_KEY,
        DEVELOPMENT_JWT_SECRET,
        "bench-jwt-secret-0123456789abcdef0123456789",  # bench/common.py
    }
)
# A random secret of 32 or more characters from any usual alphabet has far more distinct
# characters than this; 'a'*32, 'abab...' or a word repeated have fewer.
MIN_DISTINCT_SECRET_CHARACTERS = 10
MIN_SECRET_KEY_LENGTH = 50  # what Django's `check --deploy` (security.W009) asks for
INSECURE_SECRET_KEY_PREFIX = "django-insecure-"  # noqa: S105 - a prefix, not a secret


def refuse_guessable_production_secret(name: str, value: str) -> None:
    """Refuse a secret that is public (a default written in the code) or too uniform to be random."""
    if value in PUBLIC_SECRETS:
        raise ImproperlyConfigured(
            f"{name} is a development value written in the source code; set a random one in production"
        )
    if len(set(value)) < MIN_DISTINCT_SECRET_CHARACTERS:
        raise ImproperlyConfigured(
            f"{name} has fewer than {MIN_DISTINCT_SECRET_CHARACTERS} distinct characters, too little to be random"
        )


def refuse_insecure_production_settings(
    *, secrets: dict[str, list[str]], secret_key: str, debug: bool, allowed_hosts: list[str]
) -> None:
    """Every production refusal of issue 14, in order: DEBUG, ALLOWED_HOSTS, then the secrets
    (Django's development prefix, public or uniform values, one value used for two secrets).
    Missing and short secrets are refused before, by ``require_production_secret``.

    ``secrets`` maps a variable to its values (several for TURN_SECRET, none when unset)."""
    if debug:
        raise ImproperlyConfigured("DEBUG must be false in production (it shows tracebacks and settings)")
    if any("*" in host for host in allowed_hosts):
        raise ImproperlyConfigured("ALLOWED_HOSTS must name the service's hosts in production, not '*'")
    if secret_key.startswith(INSECURE_SECRET_KEY_PREFIX):
        raise ImproperlyConfigured(
            f"SECRET_KEY starts with {INSECURE_SECRET_KEY_PREFIX!r}, Django's mark of a development key"
        )
    seen: dict[str, str] = {}
    for name, values in secrets.items():
        for value in values:
            refuse_guessable_production_secret(name, value)
            if value in seen and seen[value] != name:
                raise ImproperlyConfigured(f"{name} must not be the same value as {seen[value]}")
            seen.setdefault(value, name)
