"""Every variable the code reads is documented (README.md's table) and listed (.env.example), and
nothing else is; the Compose environment gives the settings a CockroachDB connection.

The names come from the source (tests/deploy/environment.py), so a variable added anywhere
later is checked too.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.deploy import compose, environment
from tests.support import production

pytestmark = pytest.mark.portable

SERVICE_VARIABLES = environment.variables_read_by_the_service()
TEST_VARIABLES = environment.variables_read_by_the_tests()
COMPOSE_VARIABLES = compose.interpolated_names(compose.COMPOSE_FILE)


def test_the_source_scan_finds_the_variables_it_must():
    # A sample of each way of reading, so a scanner that silently finds nothing cannot pass.
    assert {"SECRET_KEY", "DATABASE_URL", "DB_HOST", "DB_PASSWORD", "THROTTLE_LOGIN", "SPOOL_PATH"} <= SERVICE_VARIABLES
    assert {"TEST_DATABASE_URL"} == TEST_VARIABLES


def test_the_source_scan_follows_helpers_that_wrap_a_reader(tmp_path):
    module = tmp_path / "sample.py"
    module.write_text(
        textwrap.dedent(
            """
            from secureconnect import config

            def _rate(name, default):
                return config.get_str(name, default)

            def _twice(name):
                return _rate(name, "1/s")

            A = config.get_int("DIRECT", 1)
            B = _rate("WRAPPED", "1/min")
            C = _twice("WRAPPED_TWICE")
            D = get_str("NOT_CONFIG")  # someone else's get_str
            E = config.get_str(f"{A}_DYNAMIC")
            """
        )
    )
    assert environment.names_read_in(module) == {"DIRECT", "WRAPPED", "WRAPPED_TWICE"}


@pytest.mark.parametrize("name", sorted(SERVICE_VARIABLES | TEST_VARIABLES))
def test_every_variable_the_code_reads_is_in_the_readme_table(name):
    assert name in environment.readme_configuration_table(), f"add a row for {name} to README.md, Configuration"


def test_the_readme_table_lists_nothing_the_code_does_not_read():
    extra = environment.readme_configuration_table() - SERVICE_VARIABLES - TEST_VARIABLES
    assert not extra, f"README.md documents variables nothing reads: {sorted(extra)}"


@pytest.mark.parametrize("name", sorted(SERVICE_VARIABLES))
def test_every_variable_the_service_reads_is_in_env_example(name):
    assert name in environment.env_example_names(), f"add {name}= to .env.example"


def test_env_example_lists_only_service_and_compose_variables():
    listed = environment.env_example_names()
    assert not listed & TEST_VARIABLES, "test-only variables stay out of .env.example"
    extra = listed - SERVICE_VARIABLES - COMPOSE_VARIABLES - {"COMPOSE_FILE"}
    assert not extra, f".env.example lists variables nothing reads: {sorted(extra)}"
    assert listed >= COMPOSE_VARIABLES - SERVICE_VARIABLES, "document the Compose-only variables too"


def test_env_example_sets_no_secret_value():
    for line in (compose.ROOT / ".env.example").read_text().splitlines():
        name, _, value = line.lstrip("# ").partition("=")
        if name in ("SECRET_KEY", "JWT_SECRET", "TURN_SECRET", "DB_PASSWORD", "REDIS_PASSWORD", "METRICS_TOKEN"):
            assert value == "", f"{name} has a value in .env.example"


REDIS_PASSWORD = "Zq3xV9pL0mN7rT2wK5yB8cD1fG4hJ6sA"


def manage_under_compose(tmp_path, *args, **overrides) -> subprocess.CompletedProcess:
    """`manage.py <args>` in a fresh process with a video-service container's environment:
    docker-compose.yml's (defaults interpolated), and its secrets as files."""
    env = compose.environment(compose.load()["services"]["video-service"])
    secrets = {
        "SECRET_KEY_FILE": production.SECRET_KEY,
        "JWT_SECRET_FILE": production.JWT_SECRET,
        "TURN_SECRET_FILE": production.TURN_SECRET,
    }
    for variable, value in secrets.items():
        (tmp_path / variable).write_text(value + "\n")
        env[variable] = str(tmp_path / variable)
    (tmp_path / "firebase.json").write_text("{}")
    env["GOOGLE_APPLICATION_CREDENTIALS"] = str(tmp_path / "firebase.json")
    env["SPOOL_PATH"] = str(tmp_path / "spool" / "spool.sqlite3")
    # What cockroachdb-certs and make-secrets.sh leave in the container, as files here.
    for variable in ("REDIS_PASSWORD_FILE", "DB_SSLROOTCERT", "DB_SSLCERT", "DB_SSLKEY"):
        path = tmp_path / Path(env[variable]).name
        path.write_text(REDIS_PASSWORD + "\n" if variable == "REDIS_PASSWORD_FILE" else "a PEM file\n")
        env[variable] = str(path)
    env.update(overrides)
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT", "TMPDIR")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=compose.ROOT,
        env={**base, **env, "DJANGO_SETTINGS_MODULE": "secureconnect.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def settings_under_compose(tmp_path, **overrides) -> dict:
    """The settings a video-service container gets, as `manage.py shell` reads them."""
    code = textwrap.dedent(
        """
        import json
        from django.conf import settings
        from django.db import connection
        db = settings.DATABASES["default"]
        print(json.dumps({
            "engine": db["ENGINE"], "vendor": connection.vendor, "host": db["HOST"], "port": db["PORT"],
            "name": db["NAME"], "user": db["USER"], "options": db.get("OPTIONS", {}),
            "telemetry_disabled": settings.DISABLE_COCKROACHDB_TELEMETRY, "secret_key": settings.SECRET_KEY,
            "jwt_secret": settings.JWT_SECRET, "turn_secret": settings.TURN_SECRET,
            "allowed_hosts": settings.ALLOWED_HOSTS, "num_proxies": settings.REST_FRAMEWORK["NUM_PROXIES"],
            "redis_url": settings.REDIS_URL, "push_provider": settings.PUSH_PROVIDER,
            "is_production": settings.IS_PRODUCTION, "spool_path": str(settings.SPOOL_PATH),
            "cache_location": settings.CACHES["default"]["LOCATION"],
            "channel_layer_address": settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]["address"],
        }))
        """
    )
    result = manage_under_compose(tmp_path, "shell", "--no-imports", "-c", code, **overrides)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_compose_environment_selects_django_cockroachdb_with_telemetry_off(tmp_path):
    """Settings only: no CockroachDB server runs here, so no connection is made."""
    settings = settings_under_compose(tmp_path)
    # django-cockroachdb, with connections from the process's pool (secureconnect/db/pool.py)
    assert settings["engine"] == "secureconnect.db.cockroachdb"
    assert settings["vendor"] == "cockroachdb"
    assert (settings["host"], settings["port"], settings["name"], settings["user"]) == (
        "cockroachdb",
        26257,
        "secureconnect_poc",
        "secureconnect",
    )
    assert settings["options"]["sslmode"] == "verify-full"
    assert settings["options"]["connect_timeout"] == 5
    assert settings["telemetry_disabled"] is True
    assert settings["is_production"] is True


def test_the_compose_environment_reads_secrets_from_the_mounted_files(tmp_path):
    settings = settings_under_compose(tmp_path)
    assert (settings["secret_key"], settings["jwt_secret"]) == (production.SECRET_KEY, production.JWT_SECRET)
    assert settings["turn_secret"] == [production.TURN_SECRET]
    assert settings["allowed_hosts"] == ["127.0.0.1", "localhost"]
    assert settings["num_proxies"] == 1
    assert settings["redis_url"] == f"redis://:{REDIS_PASSWORD}@redis:6379/0"
    assert settings["push_provider"] == "none"  # no FIREBASE_PROJECT_ID: push is off, with a warning
    assert settings["spool_path"] == str(tmp_path / "spool" / "spool.sqlite3")


def test_firebase_with_the_placeholder_credentials_stops_start_up_with_one_line(tmp_path):
    """FIREBASE_PROJECT_ID switches Firebase on; until the real key replaces make-secrets.sh's
    placeholder, production refuses to start and says which file is wrong."""
    result = manage_under_compose(tmp_path, "check", FIREBASE_PROJECT_ID="secureconnect-prod")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Configuration error: GOOGLE_APPLICATION_CREDENTIALS points at ")


def test_cockroachdb_telemetry_can_be_switched_back_on(tmp_path):
    assert settings_under_compose(tmp_path, DISABLE_COCKROACHDB_TELEMETRY="false")["telemetry_disabled"] is False


def test_a_cockroach_url_wins_over_the_legacy_variables(tmp_path):
    settings = settings_under_compose(
        tmp_path, DATABASE_URL="cockroach://video@crdb.internal:26257/calls?sslmode=verify-full"
    )
    assert (settings["engine"], settings["host"], settings["name"], settings["user"]) == (
        "secureconnect.db.cockroachdb",
        "crdb.internal",
        "calls",
        "video",
    )
    assert settings["telemetry_disabled"] is True


def test_the_compose_environment_connects_with_the_certificates_of_the_certificate_step(tmp_path):
    """The service's TLS files reach libpq's options (no server here: settings only)."""
    options = settings_under_compose(tmp_path)["options"]
    assert options["sslrootcert"] == str(tmp_path / "ca.crt")
    assert options["sslcert"] == str(tmp_path / "client.secureconnect.crt")
    assert options["sslkey"] == str(tmp_path / "client.secureconnect.key")


def test_the_compose_environment_gives_the_redis_password_to_the_cache_and_the_channel_layer(tmp_path):
    settings = settings_under_compose(tmp_path)
    expected = f"redis://:{REDIS_PASSWORD}@redis:6379/0"
    assert settings["cache_location"] == settings["channel_layer_address"] == expected


def test_a_missing_certificate_stops_start_up_with_one_line_naming_the_variable(tmp_path):
    result = manage_under_compose(tmp_path, "check", DB_SSLKEY=str(tmp_path / "absent.key"))
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert "DB_SSLKEY points at" in line and "absent.key" in line
