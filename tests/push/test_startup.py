"""Choosing the provider at start-up: Firebase's log line, the production refusal, the
development fallback (each through a real `manage.py check`)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support import production

pytestmark = pytest.mark.portable
ROOT = Path(__file__).resolve().parents[2]
CLEARED = (
    "ENV",
    "SECRET_KEY",
    "JWT_SECRET",
    "DJANGO_SETTINGS_MODULE",
    "DATABASE_URL",
    "LOG_LEVEL",
    "PUSH_PROVIDER",
    "FIREBASE_PROJECT_ID",
    "FIREBASE_CREDENTIALS_PATH",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "GCLOUD_PROJECT",
)


def manage_check(tmp_path, **variables):
    env = {k: v for k, v in os.environ.items() if k not in CLEARED and not k.endswith("_FILE")}
    env.update(
        SECRET_KEY=production.SECRET_KEY,
        JWT_SECRET=production.JWT_SECRET,
        ALLOWED_HOSTS="video.example",
        DATABASE_URL=f"sqlite:///{tmp_path}/check.sqlite3",
        DJANGO_SETTINGS_MODULE="secureconnect.settings",
        LOG_LEVEL="INFO",
        **variables,
    )
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def assert_refused_with_one_line(result, *named):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Configuration error: ")
    for text in named:
        assert text in lines[0]


def service_account_file(tmp_path, project_id="sa-project") -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = tmp_path / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": project_id,
                "private_key_id": "0123456789abcdef",
                "private_key": pem,
                "client_email": f"push@{project_id}.iam.gserviceaccount.com",
                "client_id": "1234567890",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    return str(path)


def test_production_refuses_firebase_without_credentials(tmp_path):
    result = manage_check(tmp_path, ENV="production", PUSH_PROVIDER="firebase", FIREBASE_PROJECT_ID="demo")

    assert_refused_with_one_line(result, "FIREBASE_CREDENTIALS_PATH", "GOOGLE_APPLICATION_CREDENTIALS")


def test_production_refuses_a_credentials_file_that_is_missing(tmp_path):
    missing = str(tmp_path / "nope.json")

    result = manage_check(tmp_path, ENV="production", FIREBASE_PROJECT_ID="demo", FIREBASE_CREDENTIALS_PATH=missing)

    assert_refused_with_one_line(result, "FIREBASE_CREDENTIALS_PATH", missing)


def test_production_refuses_a_credentials_file_it_cannot_use(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")

    result = manage_check(
        tmp_path, ENV="production", PUSH_PROVIDER="firebase", GOOGLE_APPLICATION_CREDENTIALS=str(broken)
    )

    assert_refused_with_one_line(result, "GOOGLE_APPLICATION_CREDENTIALS", str(broken))


def test_firebase_logs_its_project_at_start_up(tmp_path):
    result = manage_check(tmp_path, ENV="production", FIREBASE_CREDENTIALS_PATH=service_account_file(tmp_path))

    assert result.returncode == 0, result.stderr
    assert "Using Firebase Provider for project: sa-project" in result.stderr


def test_firebase_project_id_overrides_the_one_in_the_credentials(tmp_path):
    result = manage_check(
        tmp_path,
        ENV="production",
        PUSH_PROVIDER="firebase",
        FIREBASE_PROJECT_ID="configured-project",
        GOOGLE_APPLICATION_CREDENTIALS=service_account_file(tmp_path),
    )

    assert result.returncode == 0, result.stderr
    assert "Using Firebase Provider for project: configured-project" in result.stderr


def test_development_falls_back_to_the_log_provider_with_a_warning(tmp_path):
    result = manage_check(tmp_path, ENV="development", PUSH_PROVIDER="firebase")

    assert result.returncode == 0, result.stderr
    assert "WARNING" in result.stderr
    assert "fall back to the log provider" in result.stderr
    assert "FIREBASE_CREDENTIALS_PATH" in result.stderr


def test_production_without_push_variables_starts_with_pushes_off_and_says_so(tmp_path):
    result = manage_check(tmp_path, ENV="production")

    assert result.returncode == 0, result.stderr
    assert "PUSH_PROVIDER is none" in result.stderr


def test_an_unknown_provider_names_the_variable(tmp_path):
    result = manage_check(tmp_path, PUSH_PROVIDER="apns")

    assert_refused_with_one_line(result, "PUSH_PROVIDER must be one of firebase, log, none")
