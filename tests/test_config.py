"""Configuration from the environment: URL schemes, the legacy DB_* variables, *_FILE secrets,
and production refusals."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from secureconnect import config

pytestmark = pytest.mark.portable
ROOT = Path(__file__).resolve().parent.parent
DB_VARS = ("DATABASE_URL", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD", "DB_SSLMODE")


@pytest.fixture
def clean_env(monkeypatch):
    for name in DB_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)
    return monkeypatch


def test_cockroach_url_selects_django_cockroachdb(clean_env, tmp_path):
    clean_env.setenv("DATABASE_URL", "cockroach://root@crdb:26257/secureconnect_poc?sslmode=disable")
    db = config.database_config(base_dir=tmp_path)
    assert db["ENGINE"] == "django_cockroachdb"
    assert (db["HOST"], db["PORT"], db["NAME"], db["USER"]) == ("crdb", 26257, "secureconnect_poc", "root")
    assert db["OPTIONS"] == {"sslmode": "disable"}


def test_postgres_url_selects_the_postgresql_backend(clean_env, tmp_path):
    clean_env.setenv("DATABASE_URL", "postgres://app:s3cret@db.internal:5433/calls")
    db = config.database_config(base_dir=tmp_path)
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["HOST"], db["PORT"], db["NAME"], db["PASSWORD"]) == ("db.internal", 5433, "calls", "s3cret")


def test_sqlite_url_selects_sqlite(clean_env, tmp_path):
    clean_env.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/calls.sqlite3")
    db = config.database_config(base_dir=tmp_path)
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["NAME"] == f"{tmp_path}/calls.sqlite3"


def test_nothing_configured_means_embedded_sqlite_under_var(clean_env, tmp_path):
    db = config.database_config(base_dir=tmp_path)
    assert db == {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "var" / "secureconnect.sqlite3")}
    assert (tmp_path / "var").is_dir()


def test_legacy_db_variables_build_a_cockroach_connection_with_defaults(clean_env, tmp_path):
    clean_env.setenv("DB_HOST", "cockroachdb")
    db = config.database_config(base_dir=tmp_path)
    assert db["ENGINE"] == "django_cockroachdb"
    assert (db["HOST"], db["PORT"], db["NAME"], db["USER"], db["PASSWORD"]) == (
        "cockroachdb",
        26257,
        "secureconnect",
        "root",
        "",
    )
    assert db["OPTIONS"] == {"sslmode": "disable"}


def test_legacy_db_variables_all_set(clean_env, tmp_path):
    clean_env.setenv("DB_HOST", "crdb-1")
    clean_env.setenv("DB_PORT", "26258")
    clean_env.setenv("DB_NAME", "secureconnect_poc")
    clean_env.setenv("DB_USER", "video")
    clean_env.setenv("DB_PASSWORD", "p@ss/word")
    clean_env.setenv("DB_SSLMODE", "verify-full")
    db = config.database_config(base_dir=tmp_path)
    assert (db["HOST"], db["PORT"], db["NAME"], db["USER"], db["PASSWORD"]) == (
        "crdb-1",
        26258,
        "secureconnect_poc",
        "video",
        "p@ss/word",
    )
    assert db["OPTIONS"] == {"sslmode": "verify-full"}


def test_database_url_wins_over_legacy_variables(clean_env, tmp_path):
    clean_env.setenv("DB_HOST", "cockroachdb")
    clean_env.setenv("DATABASE_URL", "postgres://u@h/d")
    assert config.database_config(base_dir=tmp_path)["ENGINE"] == "django.db.backends.postgresql"


def test_db_password_can_come_from_a_file(clean_env, tmp_path):
    secret = tmp_path / "db_password"
    secret.write_text("from-a-docker-secret\n")
    clean_env.setenv("DB_HOST", "cockroachdb")
    clean_env.setenv("DB_PASSWORD_FILE", str(secret))
    assert config.database_config(base_dir=tmp_path)["PASSWORD"] == "from-a-docker-secret"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("nonsense", "unknown scheme"),
        ("mongodb://h/db", "unknown scheme 'mongodb'"),
        ("postgres://u@h:notaport/db", "unparsable"),
        ("postgres://u@h:5432", "names no database"),
    ],
)
def test_unusable_database_url_names_the_variable(clean_env, tmp_path, url, reason):
    clean_env.setenv("DATABASE_URL", url)
    with pytest.raises(ImproperlyConfigured) as excinfo:
        config.database_config(base_dir=tmp_path)
    assert "DATABASE_URL" in str(excinfo.value) and reason in str(excinfo.value)


def test_bad_legacy_port_names_the_variable(clean_env, tmp_path):
    clean_env.setenv("DB_HOST", "cockroachdb")
    clean_env.setenv("DB_PORT", "twenty")
    with pytest.raises(ImproperlyConfigured, match="DB_PORT must be a whole number"):
        config.database_config(base_dir=tmp_path)


def test_file_secret_wins_and_is_stripped(monkeypatch, tmp_path):
    secret = tmp_path / "jwt"
    secret.write_text("  x" * 20 + "\n")
    monkeypatch.setenv("JWT_SECRET", "from-the-variable")
    monkeypatch.setenv("JWT_SECRET_FILE", str(secret))
    assert config.get_str("JWT_SECRET") == ("  x" * 20).strip()


def test_unreadable_secret_file_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("JWT_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="JWT_SECRET_FILE points at"):
        config.get_str("JWT_SECRET")


def test_lists_are_comma_separated(monkeypatch):
    monkeypatch.setenv("ALLOWED_HOSTS", " a.example, b.example ,,c.example ")
    assert config.get_list("ALLOWED_HOSTS") == ["a.example", "b.example", "c.example"]


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("1", True), ("off", False), ("No", False)])
def test_booleans(monkeypatch, raw, expected):
    monkeypatch.setenv("DEBUG", raw)
    assert config.get_bool("DEBUG") is expected


def test_bad_boolean_names_the_variable(monkeypatch):
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="DEBUG must be true or false"):
        config.get_bool("DEBUG")


def run_manage(*args, env_overrides):
    env = {
        k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "JWT_SECRET", "ENV", "DJANGO_SETTINGS_MODULE")
    }
    env.update(env_overrides)
    env["DJANGO_SETTINGS_MODULE"] = "secureconnect.settings"
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


STRONG = {"SECRET_KEY": "k" * 50, "JWT_SECRET": "j" * 32, "ALLOWED_HOSTS": "video.example"}


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY must be set in production"),
        ({"SECRET_KEY": config.INSECURE_SECRET_KEY}, "SECRET_KEY must be set in production"),
        ({"JWT_SECRET": ""}, "JWT_SECRET must be set in production"),
        ({"JWT_SECRET": "short-secret"}, "JWT_SECRET must be at least 32 characters"),
        ({"DATABASE_URL": "mongodb://x/y"}, "DATABASE_URL is not a usable database URL"),
    ],
)
def test_production_refuses_to_start_with_one_clear_line(overrides, named, tmp_path):
    env = {**STRONG, "ENV": "production", "DATABASE_URL": f"sqlite:///{tmp_path}/p.sqlite3", **overrides}
    result = run_manage("check", env_overrides=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"Configuration error: {result.stderr.split(': ', 1)[1].strip()}"]
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_production_starts_with_strong_secrets_from_files(tmp_path):
    (tmp_path / "secret_key").write_text("s" * 50)
    (tmp_path / "jwt_secret").write_text("j" * 40 + "\n")
    env = {
        "ENV": "production",
        "SECRET_KEY_FILE": str(tmp_path / "secret_key"),
        "JWT_SECRET_FILE": str(tmp_path / "jwt_secret"),
        "ALLOWED_HOSTS": "video.example",
        "DATABASE_URL": f"sqlite:///{tmp_path}/p.sqlite3",
    }
    result = run_manage("check", env_overrides=env)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
