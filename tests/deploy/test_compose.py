"""docker-compose.yml, checked statically (no Docker engine runs here): start order, health
checks, the database creation step, secrets, pinned images, scaling behind the proxy.

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
    images = {SERVICES[name]["image"] for name in (*NODES, "cockroachdb-init", "create-database")}
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
    assert node["command"][0] == "start" and "--insecure" in command
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
    assert "http://localhost:8080/health?ready=1" in test
    assert "-f" in test or any(arg.startswith("-") and "f" in arg for arg in test[2:])


@pytest.mark.parametrize("name", NODES)
def test_db_host_cockroachdb_reaches_every_node(name):
    assert "cockroachdb" in SERVICES[name]["networks"]["default"]["aliases"]


def test_the_cluster_is_initialised_by_a_one_shot_step_that_does_not_wait_for_health():
    init = SERVICES["cockroachdb-init"]
    # A node of a new cluster only becomes ready after `cockroach init`: waiting for health
    # here would wait forever.
    assert compose.depends_on(init) == {"cockroachdb-1": "service_started"}
    assert init["restart"] == "no"
    script = script_of(init)
    assert "cockroach init --insecure" in script and "already been initialized" in script


def test_a_one_shot_step_creates_the_database_the_service_uses_before_it_migrates():
    create = SERVICES["create-database"]
    assert compose.depends_on(create) == {
        "cockroachdb-init": "service_completed_successfully",
        "cockroachdb-1": "service_healthy",
    }
    assert create["restart"] == "no"
    assert compose.environment(create)["DB_NAME"] == SERVICE_ENV["DB_NAME"] == "secureconnect_poc"
    assert "CREATE DATABASE IF NOT EXISTS $name" in script_of(create)
    for name in ("migrate", "video-service"):
        assert compose.depends_on(SERVICES[name])["create-database"] == "service_completed_successfully"


def test_no_service_relies_on_postgres_db_which_cockroachdb_ignores():
    for name, service in SERVICES.items():
        assert "POSTGRES_DB" not in compose.environment(service), name


def script_of(service: dict) -> str:
    """The deploy/cockroach script a one-shot CockroachDB step runs (mounted at /deploy)."""
    assert "./deploy/cockroach:/deploy:ro" in service["volumes"]
    (path,) = service["command"]
    return (compose.ROOT / "deploy" / "cockroach" / path.removeprefix("/deploy/")).read_text()


# --- Redis ---------------------------------------------------------------------------------------


def test_redis_persists_with_append_only_and_is_health_checked():
    redis = SERVICES["redis"]
    assert "--appendonly" in redis["command"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(m.split(":")[0] in PROJECT["volumes"] and m.endswith(":/data") for m in redis["volumes"])
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


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
    for variable in ("SECRET_KEY_FILE", "JWT_SECRET_FILE", "TURN_SECRET_FILE", "GOOGLE_APPLICATION_CREDENTIALS"):
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
        assert f"write_once {spec['file'].removeprefix('./secrets/')} " in script


# --- scaling behind the proxy --------------------------------------------------------------------


def test_the_proxy_is_the_only_public_port_and_fronts_every_replica():
    proxy = SERVICES["proxy"]
    assert compose.depends_on(proxy) == {"video-service": "service_healthy"}
    assert compose.interpolate(proxy["ports"]) == ["8083:8080"]
    assert "./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    assert "wget" in proxy["healthcheck"]["test"]
    published = {name for name, service in SERVICES.items() if service.get("ports")}
    assert published == {"proxy", "cockroachdb-1"}
    (console,) = compose.interpolate(SERVICES["cockroachdb-1"]["ports"])
    assert console.startswith("127.0.0.1:"), "the insecure cluster's console stays on the host"


def test_nginx_proxies_http_and_websocket_upgrades_to_re_resolved_replicas():
    conf = (compose.ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    assert "resolver 127.0.0.11" in conf
    assert re.search(r"server video-service:8083 resolve;", conf)
    assert "proxy_pass http://video_service;" in conf
    assert "proxy_http_version 1.1;" in conf
    assert "proxy_set_header Upgrade $http_upgrade;" in conf
    assert "proxy_set_header Connection $connection_upgrade;" in conf
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in conf
    assert "listen 8080;" in conf
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
    "script", ["deploy/cockroach/init-cluster.sh", "deploy/cockroach/create-database.sh", "deploy/make-secrets.sh"]
)
def test_scripts_are_executable_bash_that_parses(script):
    path = compose.ROOT / script
    assert path.stat().st_mode & stat.S_IXUSR
    assert path.read_text().startswith("#!/usr/bin/env bash\n")
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
