"""The helper scripts of deploy/, run for real: the CockroachDB one-shots against a stand-in
`cockroach` program (no CockroachDB server here), Redis's start script against a stand-in
entrypoint, the secrets script, the health check."""

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
    """A `cockroach` on PATH that logs its arguments (and its standard input, to ``stdin.log``)
    and answers from a script of outcomes: each line of ``outcomes`` is ``<exit code> <output>``
    for one call (the last one repeats)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log, outcomes, calls = tmp_path / "calls.log", tmp_path / "outcomes", tmp_path / "count"
    program = bin_dir / "cockroach"
    program.write_text(
        textwrap.dedent(
            f"""\
            #!/usr/bin/env bash
            echo "$*" >> {log}
            [ -t 0 ] || cat >> {tmp_path / "stdin.log"}
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
            stdin=subprocess.DEVNULL,
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
    assert calls == ["init --certs-dir=/cockroach/certs --host=cockroachdb-1:26257"] * 2
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


def test_create_database_creates_the_database_and_the_service_user_idempotently(fake_cockroach, tmp_path):
    result, calls = fake_cockroach(
        "create-database.sh", ["0 CREATE DATABASE"], DB_NAME="secureconnect_poc", DB_USER="secureconnect"
    )
    assert result.returncode == 0, result.stderr
    assert calls == ["sql --certs-dir=/cockroach/certs --host=cockroachdb-1:26257"]
    assert (tmp_path / "stdin.log").read_text().splitlines() == [
        "CREATE DATABASE IF NOT EXISTS secureconnect_poc;",
        "USE secureconnect_poc;",
        "CREATE USER IF NOT EXISTS secureconnect;",
        "GRANT ALL ON DATABASE secureconnect_poc TO secureconnect;",
        "GRANT ALL ON SCHEMA public TO secureconnect;",
        "GRANT ALL ON ALL TABLES IN SCHEMA public TO secureconnect;",
    ]


def test_create_database_gives_the_console_user_its_password_on_stdin_only(fake_cockroach, tmp_path):
    secret = tmp_path / "console_password"
    secret.write_text("it's-a-secret\n")
    result, calls = fake_cockroach(
        "create-database.sh",
        ["0 CREATE DATABASE"],
        DB_NAME="calls",
        DB_USER="video",
        COCKROACH_CONSOLE_PASSWORD_FILE=str(secret),
    )
    assert result.returncode == 0, result.stderr
    sql = (tmp_path / "stdin.log").read_text().splitlines()
    assert sql[-3:] == [
        "CREATE USER IF NOT EXISTS console;",
        "ALTER USER console WITH PASSWORD 'it''s-a-secret';",
        "GRANT SYSTEM VIEWACTIVITY, VIEWCLUSTERMETADATA, VIEWCLUSTERSETTING TO console;",
    ]
    assert not any("secret" in call for call in calls)
    assert "secret" not in result.stdout + result.stderr


def test_create_database_refuses_a_missing_console_password(fake_cockroach, tmp_path):
    result, calls = fake_cockroach(
        "create-database.sh",
        ["0 CREATE DATABASE"],
        DB_NAME="calls",
        DB_USER="video",
        COCKROACH_CONSOLE_PASSWORD_FILE=str(tmp_path / "missing"),
    )
    assert result.returncode == 1
    assert calls == []
    assert len(result.stderr.strip().splitlines()) == 1


def test_create_database_retries_then_gives_up(fake_cockroach):
    result, calls = fake_cockroach(
        "create-database.sh", ["1 ERROR: node is not ready"], DB_NAME="calls", DB_USER="video", COCKROACH_INIT_TRIES="2"
    )
    assert result.returncode == 1
    assert len(calls) == 2
    assert result.stderr.strip() == "Could not create database calls on cockroachdb-1:26257 after 2 attempts"


@pytest.mark.parametrize(
    ("name", "user"),
    [
        ("calls; DROP DATABASE system", "video"),
        ("Calls", "video"),
        ("", "video"),
        ("calls", "root"),
        ("calls", "admin"),
        ("calls", "video; GRANT admin TO video"),
        ("calls", ""),
    ],
)
def test_create_database_refuses_names_that_are_not_plain_identifiers_or_root(fake_cockroach, name, user):
    result, calls = fake_cockroach("create-database.sh", ["0 CREATE DATABASE"], DB_NAME=name, DB_USER=user)
    assert result.returncode == 1
    assert calls == []
    assert len(result.stderr.strip().splitlines()) == 1


# --- create-certs.sh -----------------------------------------------------------------------------


@pytest.fixture
def certificate_step(tmp_path):
    """create-certs.sh against a `cockroach` that logs each call and writes the files
    `cockroach cert` would (ca.crt/ca.key, node.*, client.<user>.*), with a key's mode 0600."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "cert-calls.log"
    program = bin_dir / "cockroach"
    program.write_text(
        textwrap.dedent(
            f"""\
            #!/usr/bin/env bash
            echo "$*" >> {log}
            for arg in "$@"; do
              case "$arg" in --certs-dir=*) dir="${{arg#*=}}";; --ca-key=*) key="${{arg#*=}}";; esac
            done
            case "$2" in
              create-ca) echo ca > "$dir/ca.crt"; (umask 077; echo key > "$key");;
              create-node) echo node > "$dir/node.crt"; (umask 077; echo key > "$dir/node.key");;
              create-client) echo "$3" > "$dir/client.$3.crt"; (umask 077; echo key > "$dir/client.$3.key");;
            esac
            """
        )
    )
    program.chmod(0o755)
    dirs = {name: tmp_path / name for name in ("ca", "certs", "service")}

    def run(**env):
        result = subprocess.run(
            ["bash", str(DEPLOY / "cockroach" / "create-certs.sh")],
            env={
                "PATH": f"{bin_dir}:{os.environ['PATH']}",
                "COCKROACH_CA_DIR": str(dirs["ca"]),
                "COCKROACH_CERTS_DIR": str(dirs["certs"]),
                "SERVICE_CERTS_DIR": str(dirs["service"]),
                "COCKROACH_NODE_HOSTS": "cockroachdb-1 cockroachdb-2 cockroachdb localhost",
                "DB_USER": "secureconnect",
                **env,
            },
            capture_output=True,
            text=True,
            timeout=30,
        )
        calls = log.read_text().splitlines() if log.exists() else []
        log.unlink(missing_ok=True)
        return result, calls

    return run, dirs


def test_the_certificate_step_makes_the_ca_node_root_and_service_certificates(certificate_step):
    run, dirs = certificate_step
    result, calls = run()
    assert result.returncode == 0, result.stderr
    ca, certs, service = (
        f"--ca-key={dirs['ca']}/ca.key",
        f"--certs-dir={dirs['certs']}",
        f"--certs-dir={dirs['service']}",
    )
    assert calls == [
        f"cert create-ca {certs} {ca} --overwrite",
        f"cert create-node cockroachdb-1 cockroachdb-2 cockroachdb localhost {certs} {ca} --overwrite",
        f"cert create-client root {certs} {ca} --overwrite",
        f"cert create-client secureconnect {service} {ca} --overwrite",
    ]
    # The service's directory holds the CA certificate and its own pair: no root key, no node key.
    assert sorted(p.name for p in dirs["service"].iterdir()) == [
        "ca.crt",
        "client.secureconnect.crt",
        "client.secureconnect.key",
    ]
    assert stat.S_IMODE((dirs["service"] / "client.secureconnect.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(dirs["ca"].stat().st_mode) == 0o700
    assert not any(p.name == "ca.key" for p in (*dirs["certs"].iterdir(), *dirs["service"].iterdir()))


def test_the_certificate_step_keeps_what_exists(certificate_step):
    run, dirs = certificate_step
    run()
    before = {p: p.read_text() for d in dirs.values() for p in d.iterdir()}
    result, calls = run()
    assert result.returncode == 0, result.stderr
    assert calls == []
    assert {p: p.read_text() for d in dirs.values() for p in d.iterdir()} == before


def test_a_new_ca_re_issues_every_certificate(certificate_step):
    run, dirs = certificate_step
    run()
    (dirs["ca"] / "ca.key").unlink()
    result, calls = run()
    assert result.returncode == 0, result.stderr
    assert [call.split()[1] for call in calls] == ["create-ca", "create-node", "create-client", "create-client"]


@pytest.mark.parametrize("user", ["root", "Video", "video; DROP", ""])
def test_the_certificate_step_refuses_root_or_an_unusable_user(certificate_step, user):
    run, _ = certificate_step
    result, calls = run(DB_USER=user)
    assert result.returncode == 1
    assert calls == []
    assert len(result.stderr.strip().splitlines()) == 1


# --- start-redis.sh ------------------------------------------------------------------------------


@pytest.fixture
def redis_start(tmp_path):
    """start-redis.sh with a stand-in docker-entrypoint.sh that prints its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    entrypoint = bin_dir / "docker-entrypoint.sh"
    entrypoint.write_text('#!/bin/sh\necho "$*"\n')
    entrypoint.chmod(0o755)
    conf = tmp_path / "redis-auth.conf"

    def run(password: str | None, *args: str):
        secret = tmp_path / "redis_password"
        if password is not None:
            secret.write_text(password)
        result = subprocess.run(
            ["sh", str(DEPLOY / "redis" / "start-redis.sh"), *args],
            env={
                "PATH": f"{bin_dir}:{os.environ['PATH']}",
                "REDIS_PASSWORD_FILE": str(secret),
                "REDIS_AUTH_CONF": str(conf),
            },
            capture_output=True,
            text=True,
            timeout=30,
        )
        return result, conf

    return run


def test_redis_starts_with_requirepass_from_the_secret_in_a_private_file(redis_start):
    result, conf = redis_start("Zq3xV9pL0mN7rT2wK5yB8cD1fG4hJ6sA\n", "--appendonly", "yes")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"redis-server {conf} --appendonly yes"
    assert conf.read_text() == "requirepass Zq3xV9pL0mN7rT2wK5yB8cD1fG4hJ6sA\n"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600


@pytest.mark.parametrize("password", [None, "", "has space", 'quote"d', "new\nline"])
def test_redis_refuses_to_start_without_a_usable_password(redis_start, password):
    result, conf = redis_start(password)
    assert result.returncode != 0
    assert not conf.exists()
    assert len(result.stderr.strip().splitlines()) == 1
    assert "REDIS_PASSWORD_FILE" in result.stderr


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
    for name in ("secret_key", "jwt_secret", "turn_secret", "redis_password", "cockroach_console_password"):
        path = secrets / name
        values[name] = path.read_text().strip()
        assert len(values[name]) >= 32 and values[name].isalnum()  # production needs 32 or more
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert len(set(values.values())) == 5
    assert (secrets / "firebase-service-account.json").read_text().strip() == "{}"


def openssl(*args: str, stdin: str | None = None) -> str:
    result = subprocess.run(["openssl", *args], input=stdin, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_secrets_makes_a_matching_self_signed_tls_pair_for_localhost_with_a_private_key(checkout):
    assert shutil.which("openssl"), "make-secrets.sh needs openssl for the TLS pair"
    result = make_secrets(checkout)
    assert result.returncode == 0, result.stderr
    cert, key = checkout / "secrets" / "tls.crt", checkout / "secrets" / "tls.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert.stat().st_mode) == 0o644
    names = openssl("x509", "-in", str(cert), "-noout", "-ext", "subjectAltName")
    assert "DNS:localhost" in names and "IP Address:127.0.0.1" in names
    assert openssl("x509", "-in", str(cert), "-noout", "-pubkey") == openssl("pkey", "-in", str(key), "-pubout")
    again = make_secrets(checkout)
    assert "kept    secrets/tls.crt and secrets/tls.key" in again.stdout


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
