"""docker-compose.yml, checked statically (no Docker engine runs here): start order, health
checks, the database creation step, secrets, pinned images, scaling behind the proxy, and the
hardening of issue 14 (CockroachDB in secure mode, Redis with a password, TLS at the proxy, no
port on all interfaces).

Nothing here proves the stack runs on CockroachDB; it proves the file says what README.md says.
"""

import re
import stat
import subprocess

import pytest
from django_cockroachdb.features import DatabaseFeatures

from tests.deploy import compose

pytestmark = pytest.mark.portable

PROJECT = compose.load()
SERVICES = PROJECT["services"]
NODES = ("cockroachdb-1", "cockroachdb-2", "cockroachdb-3")
SERVICE = SERVICES["video-service"]
SERVICE_ENV = compose.environment(SERVICE)
SECRET_NAMES = re.compile(r"(SECRET|SECRET_KEY|PASSWORD|PASSPHRASE|TOKEN|PRIVATE_KEY|API_KEY)$")
SINGLE_NODE = compose.merge(PROJECT, compose.load(compose.SINGLE_NODE_FILE))
VARIANTS = {"three nodes": PROJECT, "single node": SINGLE_NODE}
CERTS_DIR = "/cockroach/certs"
NGINX_CONF = (compose.ROOT / "deploy" / "nginx" / "nginx.conf").read_text()


def cockroach_version(image: str) -> tuple[int, int, int]:
    repository, tag = compose.image_tag(image)
    match = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)", tag or "")
    assert repository == "cockroachdb/cockroach" and match, f"{image} is not a pinned CockroachDB release"
    return tuple(int(part) for part in match.groups())


def newest_cockroachdb_known_to_the_backend() -> tuple[int, int]:
    versions = [
        tuple(int(n) for n in name.split("_")[-2:])
        for name in dir(DatabaseFeatures)
        if re.fullmatch(r"is_cockroachdb_\d+_\d+", name)
    ]
    return max(versions)


# --- images --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_image_is_pinned_to_a_version(name):
    service = SERVICES[name]
    assert "image" in service or "build" in service
    if "image" in service:
        _, tag = compose.image_tag(service["image"])
        assert tag, f"{name}: {service['image']} has no tag"
        assert tag != "latest" and not tag.startswith("latest"), f"{name}: {service['image']} floats"
        if "build" not in service:
            assert re.search(r"\d+\.\d+", tag), f"{name}: {service['image']} names no version"


def test_cockroachdb_is_a_release_the_installed_django_cockroachdb_supports():
    images = {SERVICES[name]["image"] for name in (*NODES, "cockroachdb-certs", "cockroachdb-init", "create-database")}
    assert len(images) == 1, f"every CockroachDB container runs the same release, not {images}"
    major, minor, _ = cockroach_version(images.pop())
    assert (major, minor) >= DatabaseFeatures.minimum_database_version
    assert (major, minor) <= newest_cockroachdb_known_to_the_backend()


def test_the_proxy_image_can_re_resolve_scaled_replicas():
    _, tag = compose.image_tag(SERVICES["proxy"]["image"])
    version = tuple(int(n) for n in re.match(r"(\d+)\.(\d+)\.(\d+)", tag).groups())
    assert version >= (1, 27, 3), "`server ... resolve` in an upstream needs nginx 1.27.3 or newer"


# --- the CockroachDB cluster ---------------------------------------------------------------------


@pytest.mark.parametrize("name", NODES)
def test_three_nodes_join_one_cluster(name):
    node = SERVICES[name]
    command = compose.command_text(node)
    assert node["command"][0] == "start" and f"--certs-dir={CERTS_DIR}" in command
    join = re.search(r"--join=(\S+)", command).group(1).split(",")
    assert sorted(host.split(":")[0] for host in join) == list(NODES)
    assert f"--advertise-addr={name}:" in command
    assert node["hostname"] == name


@pytest.mark.parametrize("name", NODES)
def test_each_node_keeps_its_data_on_its_own_named_volume(name):
    mounts = [m for m in SERVICES[name]["volumes"] if m.endswith(":/cockroach/cockroach-data")]
    assert len(mounts) == 1
    volume = mounts[0].split(":")[0]
    assert volume in PROJECT["volumes"]
    others = [m for other in NODES if other != name for m in SERVICES[other]["volumes"]]
    assert not any(m.startswith(f"{volume}:") for m in others)


@pytest.mark.parametrize("name", NODES)
def test_each_node_is_health_checked_on_cockroachdbs_readiness_endpoint(name):
    test = SERVICES[name]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "curl"
    # Secure mode serves the HTTP port over TLS; the node certificate names localhost.
    assert "https://localhost:8080/health?ready=1" in test
    assert test[test.index("--cacert") + 1] == f"{CERTS_DIR}/ca.crt"
    assert "-f" in test or any(arg.startswith("-") and "f" in arg for arg in test[2:])


@pytest.mark.parametrize("name", NODES)
def test_db_host_cockroachdb_reaches_every_node(name):
    assert "cockroachdb" in SERVICES[name]["networks"]["default"]["aliases"]


def test_the_cluster_is_initialised_by_a_one_shot_step_that_does_not_wait_for_health():
    init = SERVICES["cockroachdb-init"]
    # A node of a new cluster only becomes ready after `cockroach init`: waiting for health
    # here would wait forever.
    assert compose.depends_on(init) == {
        "cockroachdb-1": "service_started",
        "cockroachdb-certs": "service_completed_successfully",
    }
    assert init["restart"] == "no"
    script = script_of(init)
    assert 'cockroach init --certs-dir="$certs_dir"' in script and "already been initialized" in script


def test_a_one_shot_step_creates_the_database_the_service_uses_before_it_migrates():
    create = SERVICES["create-database"]
    assert compose.depends_on(create) == {
        "cockroachdb-init": "service_completed_successfully",
        "cockroachdb-1": "service_healthy",
    }
    assert create["restart"] == "no"
    assert compose.environment(create)["DB_NAME"] == SERVICE_ENV["DB_NAME"] == "secureconnect_poc"
    assert "CREATE DATABASE IF NOT EXISTS $name" in script_of(create)
    assert compose.environment(create)["DB_USER"] == SERVICE_ENV["DB_USER"]
    for name in ("migrate", "video-service"):
        assert compose.depends_on(SERVICES[name])["create-database"] == "service_completed_successfully"


def test_no_service_relies_on_postgres_db_which_cockroachdb_ignores():
    for name, service in SERVICES.items():
        assert "POSTGRES_DB" not in compose.environment(service), name


def script_of(service: dict) -> str:
    """The deploy/cockroach script a one-shot CockroachDB step runs (mounted at /deploy)."""
    assert "./deploy/cockroach:/deploy:ro" in service["volumes"]
    (path,) = service["command"]
    assert path.startswith("/deploy/")
    return (compose.ROOT / "deploy" / "cockroach" / path.removeprefix("/deploy/")).read_text()


# --- Redis ---------------------------------------------------------------------------------------


def test_redis_persists_with_append_only_and_is_health_checked():
    redis = SERVICES["redis"]
    assert "--appendonly" in redis["command"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(m.split(":")[0] in PROJECT["volumes"] and m.endswith(":/data") for m in redis["volumes"])
    kind, check = redis["healthcheck"]["test"]
    assert kind == "CMD-SHELL" and "redis-cli ping" in check and "PONG" in check


# --- the video service ---------------------------------------------------------------------------


def test_the_service_is_built_from_the_repositorys_dockerfile():
    assert SERVICE["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    assert (compose.ROOT / "Dockerfile").is_file()


def test_the_service_waits_for_the_database_migrates_then_serves_with_the_production_server_on_8083():
    command = compose.command_text(SERVICE)
    steps = [step.strip() for step in command.split("-c", 1)[1].split("&&")]
    assert steps == [
        "python manage.py wait_for_db",
        "python manage.py migrate --no-input",
        "exec python -m secureconnect.server --bind 0.0.0.0 --port 8083",
    ]


def test_migrations_run_once_before_any_replica_starts():
    migrate = SERVICES["migrate"]
    assert compose.command_text(migrate).endswith("python manage.py wait_for_db && python manage.py migrate --no-input")
    assert migrate["build"] == SERVICE["build"] and migrate["image"] == SERVICE["image"]
    assert compose.environment(migrate) == SERVICE_ENV
    assert migrate["restart"] == "no"
    assert compose.depends_on(SERVICE)["migrate"] == "service_completed_successfully"


def test_the_service_starts_after_cockroachdb_and_redis_are_healthy():
    assert compose.depends_on(SERVICE) == {
        "cockroachdb-1": "service_healthy",
        "create-database": "service_completed_successfully",
        "migrate": "service_completed_successfully",
        "redis": "service_healthy",
    }


def test_the_service_health_check_is_liveness_not_readiness():
    test = SERVICE["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "/app/deploy/healthcheck.py"]
    assert test[3].endswith("/health")  # /health/ready would restart the service in a DB outage
    host = test[3].split("//", 1)[1].split(":")[0]
    assert host in SERVICE_ENV["ALLOWED_HOSTS"].split(","), "Django would answer the health check 400"
    assert (compose.ROOT / "deploy" / "healthcheck.py").is_file()


def test_the_service_runs_in_production_with_the_old_deployments_variables():
    assert SERVICE_ENV["ENV"] == "production"
    assert SERVICE_ENV["DB_HOST"] == "cockroachdb"
    assert SERVICE_ENV["DB_NAME"] == "secureconnect_poc"
    assert SERVICE_ENV["REDIS_URL"].startswith("redis://redis:6379")
    for name in ("PUSH_PROVIDER", "FIREBASE_PROJECT_ID", "GOOGLE_APPLICATION_CREDENTIALS", "JWT_SECRET_FILE"):
        assert name in SERVICE_ENV
    assert SERVICE_ENV["DISABLE_COCKROACHDB_TELEMETRY"] == "true"
    assert "DATABASE_URL" not in SERVICE_ENV  # it would win over DB_*


def test_the_spool_lives_on_a_named_volume():
    directory = SERVICE_ENV["SPOOL_PATH"].rsplit("/", 1)[0]
    (mount,) = [m for m in SERVICE["volumes"] if m.endswith(f":{directory}")]
    assert mount.split(":")[0] in PROJECT["volumes"]


def test_the_service_publishes_no_host_port_so_it_can_be_scaled():
    assert "ports" not in SERVICE and "container_name" not in SERVICE
    assert SERVICE["expose"] == ["8083"]


# --- secrets -------------------------------------------------------------------------------------


def test_secrets_are_docker_secrets_passed_through_file_variables():
    mounted = set(SERVICE["secrets"])
    for variable in (
        "SECRET_KEY_FILE",
        "JWT_SECRET_FILE",
        "TURN_SECRET_FILE",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "REDIS_PASSWORD_FILE",
    ):
        path = SERVICE_ENV[variable]
        assert path.startswith("/run/secrets/"), variable
        assert path.removeprefix("/run/secrets/") in mounted, variable
    assert mounted <= set(PROJECT["secrets"])


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_no_secret_value_is_written_in_the_compose_file(name):
    for variable, value in compose.environment(SERVICES[name]).items():
        assert not SECRET_NAMES.search(variable), f"{name}: give {variable} as {variable}_FILE (a Docker secret)"
        assert not re.search(r"://[^/@\s:]*:[^/@\s]+@", value), f"{name}: a password in {variable}"


def test_secret_files_live_under_secrets_and_are_git_ignored():
    files = [spec["file"] for spec in PROJECT["secrets"].values()]
    assert all(path.startswith("./secrets/") for path in files)
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *files], cwd=compose.ROOT, capture_output=True, text=True
    )
    assert sorted(ignored.stdout.split()) == sorted(files)
    tracked = subprocess.run(["git", "ls-files", "secrets"], cwd=compose.ROOT, capture_output=True, text=True)
    assert set(tracked.stdout.split()) <= {"secrets/.gitignore"}


def test_the_secrets_script_creates_every_file_compose_reads():
    script = (compose.ROOT / "deploy" / "make-secrets.sh").read_text()
    for spec in PROJECT["secrets"].values():
        name = spec["file"].removeprefix("./secrets/")
        assert (
            f"write_once {name} " in script or f"-out secrets/{name}" in script or f"-keyout secrets/{name}" in script
        )


# --- scaling behind the proxy --------------------------------------------------------------------


def test_the_proxy_is_the_only_public_port_and_fronts_every_replica():
    proxy = SERVICES["proxy"]
    assert compose.depends_on(proxy) == {"video-service": "service_healthy"}
    assert compose.interpolate(proxy["ports"]) == ["127.0.0.1:8443:8443", "127.0.0.1:8083:8080"]
    assert "./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    assert "wget" in proxy["healthcheck"]["test"]
    published = {name for name, service in SERVICES.items() if service.get("ports")}
    assert published == {"proxy", "cockroachdb-1"}
    (console,) = compose.interpolate(SERVICES["cockroachdb-1"]["ports"])
    assert console.startswith("127.0.0.1:"), "the DB Console stays on the host"


def test_nginx_proxies_http_and_websocket_upgrades_to_re_resolved_replicas():
    conf = (compose.ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    assert "resolver 127.0.0.11" in conf
    assert re.search(r"server video-service:8083 resolve;", conf)
    assert "proxy_pass http://video_service;" in conf
    assert "proxy_http_version 1.1;" in conf
    assert "proxy_set_header Upgrade $http_upgrade;" in conf
    assert "proxy_set_header Connection $connection_upgrade;" in conf
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in conf
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in conf
    # One proxy in front: the service reads the client address one X-Forwarded-For hop in.
    assert SERVICE_ENV["NUM_PROXIES"] == "1"


# --- the whole graph -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_long_running_services_are_health_checked_and_one_shots_are_awaited(name):
    service = SERVICES[name]
    if service.get("restart") == "no":
        waiting = [
            other
            for other, spec in SERVICES.items()
            if compose.depends_on(spec).get(name) == "service_completed_successfully"
        ]
        assert waiting, f"nothing waits for the one-shot {name}"
    else:
        assert service["restart"] == "unless-stopped"
        assert service["healthcheck"]["test"], name


@pytest.mark.parametrize("variant", ["three nodes", "single node"])
def test_every_dependency_exists_and_the_start_order_has_no_cycle(variant):
    project = PROJECT if variant == "three nodes" else compose.merge(PROJECT, compose.load(compose.SINGLE_NODE_FILE))
    active = compose.active_services(project)
    order, remaining = [], dict(active)
    while remaining:
        ready = [n for n, s in remaining.items() if set(compose.depends_on(s)) <= set(order)]
        assert ready, f"{variant}: a dependency is missing or circular among {sorted(remaining)}"
        order += sorted(ready)
        for n in ready:
            del remaining[n]
    assert order.index("create-database") < order.index("migrate") < order.index("video-service")


def test_the_single_node_variant_runs_start_single_node_and_nothing_of_the_cluster():
    project = compose.merge(PROJECT, compose.load(compose.SINGLE_NODE_FILE))
    active = compose.active_services(project)
    assert "cockroachdb-2" not in active and "cockroachdb-3" not in active
    assert active["cockroachdb-1"]["command"][0] == "start-single-node"
    assert f"--certs-dir={CERTS_DIR}" in compose.command_text(active["cockroachdb-1"])
    assert "--join" not in compose.command_text(active["cockroachdb-1"])
    # The rest of the stack is the same.
    assert active["video-service"] == SERVICE


def test_bind_mounted_paths_exist_in_the_repository():
    for name, service in SERVICES.items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("./"):
                assert (compose.ROOT / source).exists(), f"{name} mounts {source}, which does not exist"


@pytest.mark.parametrize(
    ("script", "shell"),
    [
        ("deploy/cockroach/create-certs.sh", "bash"),
        ("deploy/cockroach/init-cluster.sh", "bash"),
        ("deploy/cockroach/create-database.sh", "bash"),
        ("deploy/make-secrets.sh", "bash"),
        ("deploy/redis/start-redis.sh", "sh"),  # the redis alpine image has no bash
    ],
)
def test_scripts_are_executable_and_parse(script, shell):
    path = compose.ROOT / script
    assert path.stat().st_mode & stat.S_IXUSR
    shebang = "#!/usr/bin/env bash\n" if shell == "bash" else "#!/bin/sh\n"
    assert path.read_text().startswith(shebang)
    result = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --- hardening: CockroachDB in secure mode -------------------------------------------------------


def everything_a_service_runs(service: dict) -> str:
    """Its command, entrypoint and health check, as one text."""
    parts = [compose.command_text(service)]
    for key in ("entrypoint",):
        value = service.get(key) or []
        parts.append(value if isinstance(value, str) else " ".join(value))
    parts.append(" ".join((service.get("healthcheck") or {}).get("test") or []))
    return " ".join(parts)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_nothing_runs_cockroachdb_in_insecure_mode(variant):
    for name, service in compose.active_services(VARIANTS[variant]).items():
        assert "--insecure" not in everything_a_service_runs(service), f"{variant}: {name}"
        assert compose.environment(service).get("COCKROACH_INSECURE", "false") == "false", f"{variant}: {name}"
    for script in (compose.ROOT / "deploy" / "cockroach").glob("*.sh"):
        assert "--insecure" not in script.read_text(), script.name


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_node_starts_with_the_certificates_of_the_certificate_step(variant):
    active = compose.active_services(VARIANTS[variant])
    nodes = [name for name in NODES if name in active]
    assert nodes
    for name in nodes:
        node = active[name]
        assert f"--certs-dir={CERTS_DIR}" in compose.command_text(node), name
        assert f"cockroachdb-certs:{CERTS_DIR}:ro" in node["volumes"], name
        assert compose.depends_on(node)["cockroachdb-certs"] == "service_completed_successfully", name


def test_a_one_shot_step_creates_the_ca_node_and_client_certificates_into_volumes():
    certs = SERVICES["cockroachdb-certs"]
    assert certs["restart"] == "no"
    assert compose.depends_on(certs) == {}
    script = script_of(certs)
    for command in ("cockroach cert create-ca", "cockroach cert create-node", "cockroach cert create-client"):
        assert command in script
    env = compose.environment(certs)
    hosts = env["COCKROACH_NODE_HOSTS"].split()
    # The certificate must name every address a client uses, or verify-full refuses it.
    assert set(NODES) | {SERVICE_ENV["DB_HOST"], "localhost"} <= set(hosts)
    assert env["DB_USER"] == SERVICE_ENV["DB_USER"]
    assert env["SERVICE_UID"] == "10001"  # the image's USER: libpq wants the key owned by it, 0600
    mounts = {m.split(":")[0]: m.split(":")[1] for m in certs["volumes"] if not m.startswith("./")}
    assert mounts == {
        "cockroachdb-ca": "/cockroach/ca",
        "cockroachdb-certs": CERTS_DIR,
        "video-service-db-certs": "/cockroach/service-certs",
    }
    assert set(mounts) <= set(PROJECT["volumes"])


def test_the_ca_key_is_mounted_by_the_certificate_step_only():
    holders = {name for name, s in SERVICES.items() for m in s.get("volumes", []) if m.startswith("cockroachdb-ca:")}
    assert holders == {"cockroachdb-certs"}


def test_the_service_mounts_its_own_client_certificate_and_nothing_of_roots():
    for name in ("video-service", "migrate"):
        volumes = [m.split(":") for m in SERVICES[name]["volumes"]]
        assert not any(source in ("cockroachdb-certs", "cockroachdb-ca") for source, *_ in volumes), name
        (mount,) = [(target, rest) for source, target, *rest in volumes if source == "video-service-db-certs"]
        assert mount[1] == ["ro"]
    directory = next(m.split(":")[1] for m in SERVICE["volumes"] if m.startswith("video-service-db-certs:"))
    user = SERVICE_ENV["DB_USER"]
    assert SERVICE_ENV["DB_SSLROOTCERT"] == f"{directory}/ca.crt"
    assert SERVICE_ENV["DB_SSLCERT"] == f"{directory}/client.{user}.crt"
    assert SERVICE_ENV["DB_SSLKEY"] == f"{directory}/client.{user}.key"


def test_the_service_connects_as_its_own_sql_user_with_the_server_verified():
    for name in ("video-service", "migrate"):
        env = compose.environment(SERVICES[name])
        assert env["DB_USER"] not in ("", "root", "admin"), name
        assert env["DB_SSLMODE"] == "verify-full", name
        assert "DATABASE_URL" not in env, name
    for name, service in SERVICES.items():
        for variable, value in compose.environment(service).items():
            assert not re.search(r"://root[@:]", value), f"{name}: {variable} connects as root"


def test_the_database_step_creates_the_service_user_and_grants_it_the_database():
    create = SERVICES["create-database"]
    script = script_of(create)
    assert "CREATE USER IF NOT EXISTS $user;" in script
    assert "GRANT ALL ON DATABASE $name TO $user;" in script
    assert "GRANT ALL ON SCHEMA public TO $user;" in script
    assert "admin" not in re.findall(r"GRANT (\S+) TO \$user", script)


def test_the_db_console_needs_a_login_whose_password_is_a_docker_secret():
    # Secure mode (no --insecure anywhere, checked above) makes the console ask for a login; the
    # database step gives the console user a password from a secret, and the port stays local.
    create = SERVICES["create-database"]
    env = compose.environment(create)
    path = env["COCKROACH_CONSOLE_PASSWORD_FILE"]
    assert path.startswith("/run/secrets/") and path.removeprefix("/run/secrets/") in create["secrets"]
    assert "ALTER USER $console_user WITH PASSWORD" in script_of(create)
    (console,) = compose.interpolate(SERVICES["cockroachdb-1"]["ports"])
    assert console.startswith("127.0.0.1:") and console.endswith(":8080")


# --- hardening: Redis with a password --------------------------------------------------------------


def test_redis_requires_a_password_from_a_docker_secret():
    redis = SERVICES["redis"]
    assert redis["entrypoint"] == ["/deploy/start-redis.sh"]
    assert "./deploy/redis:/deploy:ro" in redis["volumes"]
    script = (compose.ROOT / "deploy" / "redis" / "start-redis.sh").read_text()
    assert "requirepass" in script and 'exec docker-entrypoint.sh redis-server "$conf"' in script
    path = compose.environment(redis)["REDIS_PASSWORD_FILE"]
    secret = path.removeprefix("/run/secrets/")
    assert path.startswith("/run/secrets/") and secret in redis["secrets"] and secret in PROJECT["secrets"]
    # Never on a command line, where `ps` and `docker inspect` would show it.
    assert "requirepass" not in everything_a_service_runs(redis)


def test_the_service_reads_the_same_redis_password_and_the_health_check_authenticates():
    secret = compose.environment(SERVICES["redis"])["REDIS_PASSWORD_FILE"]
    assert SERVICE_ENV["REDIS_PASSWORD_FILE"] == secret
    assert secret.removeprefix("/run/secrets/") in SERVICE["secrets"]
    assert "@" not in SERVICE_ENV["REDIS_URL"]  # the password comes from the file, not the URL
    check = SERVICES["redis"]["healthcheck"]["test"][1]
    assert f'REDISCLI_AUTH="$$(cat {secret})" redis-cli ping' in check  # $$: Compose's escaped $
    assert "grep -q PONG" in check  # redis-cli exits 0 on NOAUTH too


# --- hardening: TLS at the proxy, nothing on all interfaces ---------------------------------------


def published_ports(service: dict, env: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    """(host address, host port, container port) of each published port; "" when unbound."""
    result = []
    for port in compose.interpolate(service.get("ports") or [], env):
        if isinstance(port, dict):
            result.append((port.get("host_ip", ""), str(port.get("published", "")), str(port["target"])))
            continue
        parts = str(port).rsplit(":", 2)
        result.append(tuple([""] * (3 - len(parts)) + parts))
    return result


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_no_port_is_published_on_all_interfaces(variant):
    for name, service in compose.active_services(VARIANTS[variant]).items():
        for address, _, container in published_ports(service):
            assert address == "127.0.0.1", f"{variant}: {name} publishes {container} on {address or 'all interfaces'}"
        for port in service.get("ports") or []:
            # Only the proxy's address can be changed (PROXY_BIND_ADDRESS, for a server).
            assert name == "proxy" or str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_the_proxy_opens_to_the_network_only_when_asked():
    ports = published_ports(
        SERVICES["proxy"], {"PROXY_BIND_ADDRESS": "0.0.0.0", "HTTPS_PORT": "443", "HTTP_PORT": "80"}
    )
    assert ports == [("0.0.0.0", "443", "8443"), ("0.0.0.0", "80", "8080")]
    assert compose.interpolate(SERVICES["proxy"]["environment"], {"HTTPS_PORT": "443"}) == {"PUBLIC_HTTPS_PORT": "443"}


def nginx_servers() -> list[str]:
    """The bodies of the `server { ... }` blocks of nginx.conf (braces matched, comments dropped)."""
    text = re.sub(r"#[^\n]*", "", NGINX_CONF)
    servers = []
    for match in re.finditer(r"\bserver\s*\{", text):
        depth, index = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[index], 0)
            index += 1
        servers.append(text[match.end() : index - 1])
    return servers


def directives(body: str) -> list[str]:
    return [" ".join(d.split()) for d in body.split(";") if d.strip()]


def test_the_proxy_terminates_tls_with_the_certificate_and_key_as_docker_secrets():
    proxy = SERVICES["proxy"]
    (tls,) = [body for body in nginx_servers() if "listen 8443 ssl" in directives(body)[0:3]]
    found = dict(d.split(" ", 1) for d in directives(tls) if d.startswith("ssl_certificate"))
    for directive, secret in (("ssl_certificate", "tls_certificate"), ("ssl_certificate_key", "tls_private_key")):
        assert found[directive] == f"/run/secrets/{secret}"
        assert secret in proxy["secrets"] and PROJECT["secrets"][secret]["file"].startswith("./secrets/")
    assert "ssl_protocols TLSv1.2 TLSv1.3" in directives(tls)
    assert "proxy_pass http://video_service" in tls
    assert ("127.0.0.1", "8443", "8443") in published_ports(proxy)


def test_plain_http_only_redirects_to_https_on_the_published_port():
    (plain,) = [body for body in nginx_servers() if "listen 8080" in directives(body)]
    assert directives(plain) == ["listen 8080", "return 301 https://$host:$public_https_port$request_uri"]
    template = compose.ROOT / "deploy" / "nginx" / "templates" / "public-https-port.conf.template"
    assert '"${PUBLIC_HTTPS_PORT}"' in template.read_text() and "$public_https_port" in template.read_text()
    assert "include /etc/nginx/conf.d/public-https-port.conf;" in NGINX_CONF
    proxy = SERVICES["proxy"]
    assert "./deploy/nginx/templates:/etc/nginx/templates:ro" in proxy["volumes"]
    https_host_port = next(host for _, host, container in published_ports(proxy) if container == "8443")
    assert compose.environment(proxy)["PUBLIC_HTTPS_PORT"] == https_host_port


def test_the_proxy_health_check_has_a_loopback_listener_of_its_own():
    (health,) = [body for body in nginx_servers() if "listen 127.0.0.1:8081" in directives(body)]
    assert "location = /proxy-health" in health and "proxy_pass" not in health
    assert "http://127.0.0.1:8081/proxy-health" in SERVICES["proxy"]["healthcheck"]["test"]
    assert "8081" not in {container for *_, container in published_ports(SERVICES["proxy"])}
    listens = [d for body in nginx_servers() for d in directives(body) if d.startswith("listen ")]
    assert sorted(listens) == ["listen 127.0.0.1:8081", "listen 8080", "listen 8443 ssl"]
