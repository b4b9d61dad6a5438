"""Configuration of the hardened deployment (issue 14): the database's TLS files
(DB_SSLROOTCERT, DB_SSLCERT, DB_SSLKEY, or the same parameters in DATABASE_URL) reach the
connection's OPTIONS, and REDIS_PASSWORD(_FILE) reaches the Redis URL. Settings only: no
CockroachDB or Redis server is contacted."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from secureconnect import config

pytestmark = pytest.mark.portable

VARIABLES = (
    *("DATABASE_URL", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD", "DB_SSLMODE"),
    *("DB_SSLROOTCERT", "DB_SSLCERT", "DB_SSLKEY", "REDIS_URL", "REDIS_PASSWORD"),
)
PASSWORD = "Zq3xV9pL0mN7rT2wK5yB8cD1fG4hJ6sA"


@pytest.fixture
def clean_env(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)
    return monkeypatch


@pytest.fixture
def tls_files(tmp_path):
    """A CA certificate and a client pair on disk (contents do not matter to the settings)."""
    files = {}
    for name in ("ca.crt", "client.secureconnect.crt", "client.secureconnect.key"):
        (tmp_path / name).write_text("-----BEGIN PLACEHOLDER-----\n")
        files[name] = str(tmp_path / name)
    return files


def set_tls_files(env, files):
    env.setenv("DB_SSLROOTCERT", files["ca.crt"])
    env.setenv("DB_SSLCERT", files["client.secureconnect.crt"])
    env.setenv("DB_SSLKEY", files["client.secureconnect.key"])


# --- the database's TLS files --------------------------------------------------------------------


def test_the_legacy_variables_with_tls_files_verify_the_server_and_log_in_with_a_certificate(
    clean_env, tmp_path, tls_files
):
    clean_env.setenv("DB_HOST", "cockroachdb")
    clean_env.setenv("DB_USER", "secureconnect")
    clean_env.setenv("DB_SSLMODE", "verify-full")
    set_tls_files(clean_env, tls_files)
    db = config.database_config(base_dir=tmp_path)
    assert db["ENGINE"] == "django_cockroachdb"
    assert db["USER"] == "secureconnect" and db["PASSWORD"] == ""
    assert db["OPTIONS"] == {
        "sslmode": "verify-full",
        "sslrootcert": tls_files["ca.crt"],
        "sslcert": tls_files["client.secureconnect.crt"],
        "sslkey": tls_files["client.secureconnect.key"],
    }


def test_the_tls_files_apply_to_database_url_too(clean_env, tmp_path, tls_files):
    clean_env.setenv("DATABASE_URL", "postgres://video@db.internal:5432/calls?sslmode=verify-full")
    set_tls_files(clean_env, tls_files)
    options = config.database_config(base_dir=tmp_path)["OPTIONS"]
    assert options["sslrootcert"] == tls_files["ca.crt"]
    assert options["sslkey"] == tls_files["client.secureconnect.key"]


def test_the_same_parameters_in_database_url_reach_the_options(clean_env, tmp_path, tls_files):
    url = (
        "cockroach://secureconnect@cockroachdb:26257/secureconnect_poc?sslmode=verify-full"
        f"&sslrootcert={tls_files['ca.crt']}&sslcert={tls_files['client.secureconnect.crt']}"
        f"&sslkey={tls_files['client.secureconnect.key']}"
    )
    clean_env.setenv("DATABASE_URL", url)
    options = config.database_config(base_dir=tmp_path)["OPTIONS"]
    assert (options["sslmode"], options["sslrootcert"], options["sslcert"], options["sslkey"]) == (
        "verify-full",
        tls_files["ca.crt"],
        tls_files["client.secureconnect.crt"],
        tls_files["client.secureconnect.key"],
    )


def test_the_variable_and_the_url_may_name_the_same_file(clean_env, tmp_path, tls_files):
    clean_env.setenv("DATABASE_URL", f"postgres://u@h/d?sslmode=verify-full&sslrootcert={tls_files['ca.crt']}")
    clean_env.setenv("DB_SSLROOTCERT", tls_files["ca.crt"])
    assert config.database_config(base_dir=tmp_path)["OPTIONS"]["sslrootcert"] == tls_files["ca.crt"]


def test_the_variable_and_the_url_naming_different_files_stop_start_up(clean_env, tmp_path, tls_files):
    clean_env.setenv("DATABASE_URL", "postgres://u@h/d?sslmode=verify-full&sslrootcert=/elsewhere/ca.crt")
    clean_env.setenv("DB_SSLROOTCERT", tls_files["ca.crt"])
    with pytest.raises(ImproperlyConfigured, match="DB_SSLROOTCERT and the sslrootcert in the database URL differ"):
        config.database_config(base_dir=tmp_path)


@pytest.mark.parametrize("variable", ["DB_SSLROOTCERT", "DB_SSLCERT", "DB_SSLKEY"])
def test_a_tls_file_that_does_not_exist_stops_start_up_naming_the_variable(clean_env, tmp_path, tls_files, variable):
    clean_env.setenv("DB_HOST", "cockroachdb")
    clean_env.setenv("DB_SSLMODE", "verify-full")
    set_tls_files(clean_env, tls_files)
    clean_env.setenv(variable, str(tmp_path / "missing.pem"))
    with pytest.raises(ImproperlyConfigured, match=f"^{variable} points at .*missing.pem.*not a readable file"):
        config.database_config(base_dir=tmp_path)


def test_a_client_certificate_without_its_key_stops_start_up(clean_env, tmp_path, tls_files):
    clean_env.setenv("DB_HOST", "cockroachdb")
    clean_env.setenv("DB_SSLMODE", "verify-full")
    clean_env.setenv("DB_SSLCERT", tls_files["client.secureconnect.crt"])
    with pytest.raises(ImproperlyConfigured, match="DB_SSLCERT and DB_SSLKEY go together"):
        config.database_config(base_dir=tmp_path)


@pytest.mark.parametrize("sslmode", [None, "disable", "allow", "prefer"])
def test_tls_files_with_an_sslmode_that_may_fall_back_to_plain_text_stop_start_up(
    clean_env, tmp_path, tls_files, sslmode
):
    clean_env.setenv("DB_HOST", "cockroachdb")
    if sslmode:
        clean_env.setenv("DB_SSLMODE", sslmode)
    clean_env.setenv("DB_SSLROOTCERT", tls_files["ca.crt"])
    with pytest.raises(ImproperlyConfigured, match=r"^DB_SSLROOTCERT need TLS: set DB_SSLMODE"):
        config.database_config(base_dir=tmp_path)


def test_tls_files_for_sqlite_stop_start_up(clean_env, tmp_path, tls_files):
    clean_env.setenv("DB_SSLROOTCERT", tls_files["ca.crt"])
    with pytest.raises(ImproperlyConfigured, match=r"^DB_SSLROOTCERT apply to CockroachDB and PostgreSQL"):
        config.database_config(base_dir=tmp_path)


def test_no_tls_files_leaves_the_options_as_they_were(clean_env, tmp_path):
    clean_env.setenv("DB_HOST", "cockroachdb")
    assert config.database_config(base_dir=tmp_path)["OPTIONS"] == {"sslmode": "disable"}


# --- the Redis password --------------------------------------------------------------------------


def test_the_redis_password_file_is_added_to_redis_url(clean_env, tmp_path):
    secret = tmp_path / "redis_password"
    secret.write_text(PASSWORD + "\n")
    clean_env.setenv("REDIS_URL", "redis://redis:6379/0")
    clean_env.setenv("REDIS_PASSWORD_FILE", str(secret))
    assert config.redis_url() == f"redis://:{PASSWORD}@redis:6379/0"


def test_the_redis_password_is_quoted_and_keeps_an_acl_user(clean_env):
    clean_env.setenv("REDIS_URL", "rediss://video@redis.internal:6380/2")
    clean_env.setenv("REDIS_PASSWORD", "p@ss/w:rd")
    assert config.redis_url() == "rediss://video:p%40ss%2Fw%3Ard@redis.internal:6380/2"


def test_the_url_is_unchanged_without_a_password(clean_env):
    clean_env.setenv("REDIS_URL", "redis://redis:6379/0")
    assert config.redis_url() == "redis://redis:6379/0"
    clean_env.delenv("REDIS_URL")
    assert config.redis_url() == ""


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (None, "REDIS_PASSWORD is set but REDIS_URL is not"),
        ("redis://:other@redis:6379/0", "REDIS_URL has a password already"),
        ("unix:///run/redis.sock", "REDIS_PASSWORD needs a redis:// or rediss:// REDIS_URL"),
    ],
)
def test_an_ambiguous_redis_password_stops_start_up(clean_env, url, message):
    if url:
        clean_env.setenv("REDIS_URL", url)
    clean_env.setenv("REDIS_PASSWORD", PASSWORD)
    with pytest.raises(ImproperlyConfigured, match=f"^{message}"):
        config.redis_url()


def test_an_unreadable_redis_password_file_stops_start_up_naming_it(clean_env, tmp_path):
    clean_env.setenv("REDIS_URL", "redis://redis:6379/0")
    clean_env.setenv("REDIS_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match=r"^REDIS_PASSWORD_FILE points at"):
        config.redis_url()
