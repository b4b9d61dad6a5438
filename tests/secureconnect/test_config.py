"""Configuration from the environment: URL schemes, the legacy DB_* variables, *_FILE secrets,
and production refusals."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from secureconnect import config
from tests.support import production

pytestmark = pytest.mark.portable
ROOT = Path(__file__).resolve().parents[2]
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
        k: v
        for k, v in os.environ.items()
        if k
        not in ("SECRET_KEY", "JWT_SECRET", "ENV", "DEBUG", "METRICS_TOKEN", "TURN_SECRET", "DJANGO_SETTINGS_MODULE")
    }
    env.update(env_overrides)
    env["DJANGO_SETTINGS_MODULE"] = "secureconnect.settings"
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


STRONG = {"SECRET_KEY": production.SECRET_KEY, "JWT_SECRET": production.JWT_SECRET, "ALLOWED_HOSTS": "video.example"}
RANDOM_40 = "Qm3vX9pL2sT7wK4yB8nR1cF6hJ0dG5zA-uE_iO3q"  # random, but shorter than Django's 50


def refused_in_production(overrides, tmp_path) -> subprocess.CompletedProcess:
    env = {**STRONG, "ENV": "production", "DATABASE_URL": f"sqlite:///{tmp_path}/p.sqlite3", **overrides}
    return run_manage("check", env_overrides=env)


def assert_one_line_naming(result, named):
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [f"Configuration error: {result.stderr.split(': ', 1)[1].strip()}"]
    assert named in result.stderr
    assert "Traceback" not in result.stderr


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
    assert_one_line_naming(refused_in_production(overrides, tmp_path), named)


# --- Attacks on a careless production configuration (issue 14) -------------------------------------


def test_the_development_jwt_secret_from_the_source_is_refused(tmp_path):
    result = refused_in_production({"JWT_SECRET": "development-jwt-secret-change-me-0123456789"}, tmp_path)
    assert_one_line_naming(result, "JWT_SECRET is a development value written in the source code")


def test_the_benchmarks_jwt_secret_from_the_source_is_refused(tmp_path):
    result = refused_in_production({"JWT_SECRET": "bench-jwt-secret-0123456789abcdef0123456789"}, tmp_path)
    assert_one_line_naming(result, "JWT_SECRET is a development value")


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"SECRET_KEY": "a" * 64}, "SECRET_KEY has fewer than 10 distinct characters"),
        ({"JWT_SECRET": "a" * 32}, "JWT_SECRET has fewer than 10 distinct characters"),
        ({"SECRET_KEY": "a" * 32, "JWT_SECRET": "a" * 32}, "SECRET_KEY"),
        ({"JWT_SECRET": "abcdefghi" * 8}, "JWT_SECRET has fewer than 10 distinct characters"),
        ({"JWT_SECRET": "secret" * 10}, "JWT_SECRET has fewer than 10 distinct characters"),
        ({"TURN_SECRET": f"{production.TURN_SECRET},{'t' * 32}"}, "TURN_SECRET has fewer than 10 distinct"),
        ({"METRICS_TOKEN": "0123" * 10}, "METRICS_TOKEN has fewer than 10 distinct characters"),
    ],
)
def test_secrets_too_uniform_to_be_random_are_refused(overrides, named, tmp_path):
    assert_one_line_naming(refused_in_production(overrides, tmp_path), named)


def test_a_secret_key_equal_to_the_jwt_secret_is_refused(tmp_path):
    result = refused_in_production({"JWT_SECRET": production.SECRET_KEY}, tmp_path)
    assert_one_line_naming(result, "JWT_SECRET must not be the same value as SECRET_KEY")


def test_a_metrics_token_equal_to_the_jwt_secret_is_refused(tmp_path):
    result = refused_in_production({"METRICS_TOKEN": production.JWT_SECRET}, tmp_path)
    assert_one_line_naming(result, "METRICS_TOKEN must not be the same value as JWT_SECRET")


def test_a_django_insecure_secret_key_is_refused(tmp_path):
    result = refused_in_production({"SECRET_KEY": "django-insecure-" + production.JWT_SECRET}, tmp_path)
    assert_one_line_naming(result, "SECRET_KEY starts with 'django-insecure-'")


def test_a_secret_key_shorter_than_djangos_deploy_check_asks_is_refused(tmp_path):
    result = refused_in_production({"SECRET_KEY": RANDOM_40}, tmp_path)
    assert_one_line_naming(result, "SECRET_KEY must be at least 50 characters in production")


def test_debug_on_in_production_is_refused(tmp_path):
    assert_one_line_naming(refused_in_production({"DEBUG": "true"}, tmp_path), "DEBUG must be false in production")


@pytest.mark.parametrize("hosts", ["*", "video.example,*", "*.example.com"])
def test_a_wildcard_allowed_host_in_production_is_refused(hosts, tmp_path):
    result = refused_in_production({"ALLOWED_HOSTS": hosts}, tmp_path)
    assert_one_line_naming(result, "ALLOWED_HOSTS must name the service's hosts in production")


def test_development_keeps_its_defaults():
    """The refusals are for production only: a bare checkout still runs on the built-in values."""
    result = run_manage("check", env_overrides={"ENV": "development"})
    assert result.returncode == 0, result.stderr


def test_check_deploy_with_production_settings_reports_only_the_warnings_the_readme_justifies(tmp_path):
    """HSTS, the https redirect, Secure cookies and the secrets are what `check --deploy` asks for;
    what remains (the HSTS preload flag) is explained in README.md's production checklist."""
    env = {**STRONG, "ENV": "production", "DATABASE_URL": f"sqlite:///{tmp_path}/p.sqlite3", "NUM_PROXIES": "1"}
    result = run_manage("check", "--deploy", env_overrides=env)
    assert result.returncode == 0, result.stderr
    reported = set(re.findall(r"\((\w+\.[WE]\d+)\)", result.stdout + result.stderr))
    assert reported == {"security.W021"}, result.stdout + result.stderr
    readme = (ROOT / "README.md").read_text()
    assert all(f"`{warning}`" in readme for warning in reported)


def test_production_starts_with_strong_secrets_from_files(tmp_path):
    (tmp_path / "secret_key").write_text(production.SECRET_KEY)
    (tmp_path / "jwt_secret").write_text(production.JWT_SECRET + "\n")
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
