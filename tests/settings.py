"""Test settings: the real settings, pointed at the test database, with fast hashing.

TEST_DATABASE_URL chooses the engine (default: the local PostgreSQL server, which speaks
CockroachDB's wire protocol and SQL). ``make test`` also runs the portable tests with a
``sqlite:///`` URL.
"""

import os
import tempfile
from pathlib import Path

from secureconnect import config
from secureconnect.settings import *  # noqa: F403
from secureconnect.settings import BASE_DIR, VAR_DIR

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL") or os.environ.get(
    "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/secureconnect"
)
DATABASES = {"default": config.parse_database_url(TEST_DATABASE_URL, variable="TEST_DATABASE_URL")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-secureconnect.sqlite3")}
else:
    import psycopg2.extensions

    # One test database per run, so parallel runs on one server never drop each other's.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}

    # CockroachDB always runs SERIALIZABLE; so does the suite, so 40001 retries are exercised.
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        "connect_timeout": 5,
        "isolation_level": psycopg2.extensions.ISOLATION_LEVEL_SERIALIZABLE,
    }

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
TEST_ARTIFACTS_DIR = BASE_DIR / "test-artifacts"
SPOOL_PATH = Path(tempfile.gettempdir()) / f"secureconnect-test-spool-{os.getpid()}.sqlite3"
DB_STARTUP_MODE = "off"
