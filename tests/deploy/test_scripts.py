"""The helper scripts of deploy/, run for real: the CockroachDB one-shots against a stand-in
`cockroach` program (no CockroachDB server here), the secrets script, the health check."""

import http.server
import os
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.portable

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


@pytest.fixture
def fake_cockroach(tmp_path):
    """A `cockroach` on PATH that logs its arguments and answers from a script of outcomes:
    each line of ``outcomes`` is ``<exit code> <output>`` for one call (the last one repeats)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log, outcomes, calls = tmp_path / "calls.log", tmp_path / "outcomes", tmp_path / "count"
    program = bin_dir / "cockroach"
    program.write_text(
        textwrap.dedent(
            f"""\
            #!/usr/bin/env bash
            echo "$*" >> {log}
            n=$(( $(cat {calls} 2>/dev/null || echo 0) + 1 )); echo $n > {calls}
            line=$(sed -n "${{n}}p" {outcomes}); [ -n "$line" ] || line=$(tail -n 1 {outcomes})
            echo "${{line#* }}"
            exit "${{line%% *}}"
            """
        )
    )
    program.chmod(program.stat().st_mode | stat.S_IXUSR)

    def run(script: str, outcome_lines: list[str], **env):
        outcomes.write_text("\n".join(outcome_lines) + "\n")
        result = subprocess.run(
            ["bash", str(DEPLOY / "cockroach" / script)],
            env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "COCKROACH_RETRY_DELAY": "0", **env},
            capture_output=True,
            text=True,
            timeout=30,
        )
        return result, log.read_text().splitlines() if log.exists() else []

    return run


def test_init_initialises_a_new_cluster_once_the_first_node_answers(fake_cockroach):
    result, calls = fake_cockroach(
        "init-cluster.sh",
        ["1 ERROR: cannot dial server: connection refused", "0 Cluster successfully initialized"],
    )
    assert result.returncode == 0, result.stderr
    assert calls == ["init --insecure --host=cockroachdb-1:26257"] * 2
    assert "Cluster successfully initialized" in result.stdout


def test_init_of_an_initialised_cluster_succeeds(fake_cockroach):
    result, calls = fake_cockroach("init-cluster.sh", ["1 ERROR: cluster has already been initialized"])
    assert result.returncode == 0
    assert len(calls) == 1
    assert "already initialized" in result.stdout


def test_init_gives_up_with_one_line_when_the_node_never_answers(fake_cockroach):
    result, calls = fake_cockroach(
        "init-cluster.sh", ["1 ERROR: connection refused"], COCKROACH_INIT_TRIES="3", COCKROACH_INIT_HOST="db:26257"
    )
    assert result.returncode == 1
    assert len(calls) == 3
    assert result.stderr.strip() == "Could not initialize the cluster at db:26257 after 3 attempts"


def test_create_database_creates_the_named_database_idempotently(fake_cockroach):
    result, calls = fake_cockroach("create-database.sh", ["0 CREATE DATABASE"], DB_NAME="secureconnect_poc")
    assert result.returncode == 0, result.stderr
    assert calls == [
        "sql --insecure --host=cockroachdb-1:26257 --execute=CREATE DATABASE IF NOT EXISTS secureconnect_poc"
    ]


def test_create_database_retries_then_gives_up(fake_cockroach):
    result, calls = fake_cockroach(
        "create-database.sh", ["1 ERROR: node is not ready"], DB_NAME="calls", COCKROACH_INIT_TRIES="2"
    )
    assert result.returncode == 1
    assert len(calls) == 2
    assert result.stderr.strip() == "Could not create database calls on cockroachdb-1:26257 after 2 attempts"


@pytest.mark.parametrize("name", ["calls; DROP DATABASE system", "Calls", ""])
def test_create_database_refuses_a_name_that_is_not_a_plain_identifier(fake_cockroach, name):
    result, calls = fake_cockroach("create-database.sh", ["0 CREATE DATABASE"], DB_NAME=name)
    assert result.returncode == 1
    assert calls == []
    assert len(result.stderr.strip().splitlines()) == 1


# --- make-secrets.sh -----------------------------------------------------------------------------


@pytest.fixture
def checkout(tmp_path):
    """A copy of deploy/make-secrets.sh in an empty checkout (it writes ../secrets/)."""
    (tmp_path / "deploy").mkdir()
    shutil.copy2(DEPLOY / "make-secrets.sh", tmp_path / "deploy" / "make-secrets.sh")
    return tmp_path


def make_secrets(checkout):
    return subprocess.run(
        ["bash", str(checkout / "deploy" / "make-secrets.sh")], capture_output=True, text=True, timeout=30
    )


def test_make_secrets_writes_strong_secrets_readable_by_the_container_in_a_private_directory(checkout):
    result = make_secrets(checkout)
    assert result.returncode == 0, result.stderr
    secrets = checkout / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    values = {}
    for name in ("secret_key", "jwt_secret", "turn_secret"):
        path = secrets / name
        values[name] = path.read_text().strip()
        assert len(values[name]) >= 32 and values[name].isalnum()  # production needs 32 or more
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert len(set(values.values())) == 3
    assert (secrets / "firebase-service-account.json").read_text().strip() == "{}"


def test_make_secrets_never_replaces_an_existing_secret(checkout):
    make_secrets(checkout)
    (checkout / "secrets" / "jwt_secret").write_text("the-auth-service-secret-shared-with-go-0123\n")
    before = (checkout / "secrets" / "secret_key").read_text()
    result = make_secrets(checkout)
    assert result.returncode == 0
    assert "kept    secrets/jwt_secret" in result.stdout
    assert (checkout / "secrets" / "jwt_secret").read_text() == "the-auth-service-secret-shared-with-go-0123\n"
    assert (checkout / "secrets" / "secret_key").read_text() == before


# --- healthcheck.py ------------------------------------------------------------------------------


@pytest.fixture
def http_server():
    """A loopback server answering GET /health with 200 and everything else with 503."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def healthcheck(url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(DEPLOY / "healthcheck.py"), url], capture_output=True, text=True, timeout=30
    )


def test_healthcheck_passes_on_200(http_server):
    assert healthcheck(f"{http_server}/health").returncode == 0


def test_healthcheck_fails_on_an_error_status(http_server):
    result = healthcheck(f"{http_server}/health/ready")
    assert result.returncode == 1
    assert "503" in result.stderr


def test_healthcheck_fails_when_nothing_listens():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = healthcheck(f"http://127.0.0.1:{port}/health")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
