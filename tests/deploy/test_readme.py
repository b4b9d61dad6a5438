"""README.md tells an operator how to deploy and which commands there are."""

import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.portable

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    assert f"\n## {title}\n" in README, f'README.md has no "## {title}" section'
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_every_management_command_is_in_the_operations_list():
    commands = {p.stem for p in (ROOT / "calls" / "management" / "commands").glob("*.py") if p.stem != "__init__"}
    listed = set(re.findall(r"^\| `([a-z_]+)[` ]", section("Operations commands"), flags=re.MULTILINE))
    assert listed == commands


@pytest.mark.parametrize(
    "topic",
    [
        "deploy/make-secrets.sh",
        "docker compose up -d --build",
        "deploy/docker-compose.single-node.yml",
        "--scale video-service=3",
        "/admin/",
        "Connected to CockroachDB",
        "docker compose logs",
        "secureconnect_poc",
        "has not been run",
        # The hardened deployment (issue 14): certificates, users, secrets, TLS, ports.
        "cockroach cert create-ca",
        "--certs-dir=/cockroach/certs",
        "DB_USER=secureconnect",
        "DB_SSLMODE=verify-full",
        "DB_SSLROOTCERT",
        "REDIS_PASSWORD_FILE",
        "secrets/redis_password",
        "secrets/cockroach_console_password",
        "secrets/tls.crt",
        "TLS_HOSTNAME=",
        "https://localhost:8443",
        "PROXY_BIND_ADDRESS",
        "requirements.lock",
    ],
)
def test_the_deployment_section_covers(topic):
    assert topic in section("Deploying with CockroachDB")


def test_the_deployment_section_names_the_pinned_cockroachdb_image():
    image = re.search(r"image: (cockroachdb/cockroach:\S+)", (ROOT / "docker-compose.yml").read_text()).group(1)
    assert f"`{image}`" in section("Deploying with CockroachDB")


def test_the_production_server_section_gives_the_command_and_its_limits():
    text = section("The production server")
    assert "python -m secureconnect.server --bind 0.0.0.0 --port 8083" in text
    for name in ("MAX_REQUEST_BODY_BYTES", "HTTP_HEADER_TIMEOUT", "WS_PING_INTERVAL", "WS_PING_TIMEOUT", "4408"):
        assert name in text


def test_the_deployment_section_names_every_secret_file_compose_reads():
    secrets = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["secrets"]
    for spec in secrets.values():
        assert f"`{spec['file'].removeprefix('./')}`" in section("Deploying with CockroachDB"), spec["file"]


def test_the_readme_says_how_the_locks_are_made_and_used():
    text = section("The two commands")
    for topic in ("requirements.lock", "requirements-test.lock", "--require-hashes", "make lock", "--generate-hashes"):
        assert topic in text
