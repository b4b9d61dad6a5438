"""The processes and databases a benchmark runs against, all on loopback, all stopped by PID:
a dedicated PostgreSQL database (created, migrated, dropped), the service under daphne or
uvicorn, and the Redis database the benchmarks own."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import redis

from bench.common import JWT_SECRET, METRICS_TOKEN, PG_SERVER_URL, REDIS_URL, ROOT, VENV_BIN
from bench.processes import SERVER_COMMAND, ServiceProcess
from core.cache import delete_matching

NOFILE_TARGET = 20000


def raise_open_files_limit(target: int = NOFILE_TARGET) -> int:
    """Raise this process's soft open-files limit as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = target if hard == resource.RLIM_INFINITY else min(target, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- PostgreSQL ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_cpu_seconds() -> float:
    """The Redis server's CPU seconds so far (``INFO cpu``: the whole server, whoever used it)."""
    info = redis_client().info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a server's workers)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                queue.extend(int(child) for child in task.read_text().split())
    return found


def _pids_where(test) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if test((entry / "cmdline").read_bytes()):
                    pids.append(int(entry.name))
    return pids


class CpuMeter:
    """CPU time spent by the server (its process and workers), by the PostgreSQL backends
    connected to the benchmark's database (found by name in their process titles) and by the
    Redis server (``INFO cpu``, shared with whatever else uses it), between two ``sample``s: the
    cost of a request in CPU, which a machine's other load blurs far less than throughput does."""

    GROUPS = ("service", "postgres", "redis")

    def __init__(self, server_pid: int, database_name: str):
        self.server_pid = server_pid
        self.database = f" {database_name} ".encode()

    def sample(self) -> dict[str, dict]:
        """CPU seconds so far: of each process of the service and of the database's backends (by
        PID), and of Redis."""
        backends = _pids_where(lambda cmdline: cmdline.startswith(b"postgres:") and self.database in cmdline)
        processes = {"service": _process_tree(self.server_pid), "postgres": backends}
        sampled = {group: {} for group in processes}
        for group, pids in processes.items():
            for pid in pids:
                with contextlib.suppress(OSError):  # a backend that ended meanwhile
                    sampled[group][pid] = cpu_seconds(pid)
        return sampled | {"redis": {"server": redis_cpu_seconds()}}

    @staticmethod
    def seconds_between(before: dict, after: dict) -> dict[str, float]:
        """CPU seconds per group; a process that started meanwhile counts from zero."""
        return {
            group: sum(seconds - before[group].get(key, 0.0) for key, seconds in after[group].items())
            for group in after
        }


class BenchDatabase:
    """A database of the benchmark's own on the PostgreSQL server, migrated by ``create`` and
    dropped by ``drop`` (unless kept)."""

    def __init__(self, label: str, server_url: str = PG_SERVER_URL):
        self.name = f"bench_{label}_{os.getpid()}"
        self.server_url = server_url
        parts = urlsplit(server_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 5432
        self.url = urlunsplit((parts.scheme, parts.netloc, f"/{self.name}", "", ""))

    def url_via(self, port: int) -> str:
        """The database's URL through a proxy listening on ``port`` of loopback."""
        parts = urlsplit(self.url)
        user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit((parts.scheme, f"{user}127.0.0.1:{port}", parts.path, "", ""))

    def _admin(self):
        conn = psycopg2.connect(self.server_url)
        conn.autocommit = True
        return conn

    def create(self) -> BenchDatabase:
        with contextlib.closing(self._admin()) as conn, conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.name}"')
            cur.execute(f'CREATE DATABASE "{self.name}"')
        subprocess.run(
            [str(VENV_BIN / "python"), "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=ROOT,
            env=service_environment({"DATABASE_URL": self.url, "DB_STARTUP_MODE": "off"}),
            check=True,
            timeout=300,
        )
        return self

    def connect(self):
        conn = psycopg2.connect(self.url)
        conn.autocommit = True
        return conn

    def drop(self) -> None:
        with contextlib.closing(self._admin()) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (self.name,),
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{self.name}"')


# --- Redis --------------------------------------------------------------------------------------


def redis_client(url: str = REDIS_URL) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2)


def redis_url_via(port: int, url: str = REDIS_URL) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, f"127.0.0.1:{port}", parts.path, "", ""))


# Redis is shared with other runs and suites (and other benchmarks running at the same time): a
# benchmark's services write under key prefixes of this run only, and only those keys are deleted.
RUN_KEY_PREFIX = f"bench-{os.getpid()}-{uuid.uuid4().hex[:8]}"
_prefixes_used = {RUN_KEY_PREFIX}


def redis_delete_own_keys(url: str = REDIS_URL) -> int:
    """Delete the keys this run's services wrote (their layer and cache prefixes), nothing else;
    how many were deleted."""
    client = redis_client(url)
    deleted = 0
    try:
        for prefix in sorted(_prefixes_used):
            deleted += delete_matching(client, f"{prefix}*")
    finally:
        client.close()
    return deleted


# --- the service --------------------------------------------------------------------------------

# What every benchmark's service needs: limits raised out of the way, pushes off, quiet logs.
BENCH_ENVIRONMENT = {
    "ENV": "development",
    "DEBUG": "false",  # as in production: no query log, no debug pages
    "DJANGO_SETTINGS_MODULE": "secureconnect.settings",
    "JWT_SECRET": JWT_SECRET,
    "METRICS_TOKEN": METRICS_TOKEN,
    "PUSH_PROVIDER": "none",
    "LOG_LEVEL": "WARNING",
    "THROTTLE_USER": "1000000/min",
    "THROTTLE_CALL_INITIATE": "1000000/min",
    "WS_RATE_LIMIT": "1000000",
    "WS_RATE_BURST": "1000000",
    "WS_MAX_SIGNALING_CONNECTIONS": "20000",
    "WS_MAX_EVENTS_CONNECTIONS": "20000",
    "WS_MAX_SIGNALING_PER_USER": "20000",
    "WS_MAX_EVENTS_PER_USER": "20000",
    "CALL_RING_TIMEOUT": "3600",
    "SERVER_WORKERS": "1",  # one process per server, the PID measured (the default is one per core)
    "PYTHONUNBUFFERED": "1",
    "CACHE_KEY_PREFIX": f"{RUN_KEY_PREFIX}-cache",
    "CHANNEL_LAYER_PREFIX": f"{RUN_KEY_PREFIX}-layer",
}


def service_environment(overrides: dict[str, str]) -> dict[str, str]:
    """The environment of a service process: this one's, minus anything that would point it
    at another database or settings module, plus the benchmark's settings."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_", "TEST_DATABASE", "REDIS_", "PYTEST_", "DB_", "SPOOL_"))
    }
    return {**inherited, **BENCH_ENVIRONMENT, **overrides}


class Server(ServiceProcess):
    """One ASGI server process on a free loopback port: ``server``, the production command as
    deployed (``python -m secureconnect.server``, uvicorn underneath), ``daphne``, the same command
    with ``SERVER_IMPLEMENTATION=daphne``, or ``uvicorn``, uvicorn's own command line without the
    service's limits; with its open-files limit
    raised (``ulimit -n``). Stopping, killing and the log are the test suite's ``ServiceProcess``."""

    def __init__(
        self,
        *,
        env: dict[str, str],
        log_path: Path,
        kind: str = "server",
        app: str = "secureconnect.asgi:application",
        port: int | None = None,
        argv: list[str] | None = None,
    ):
        environment = service_environment(env)
        if kind in ("server", "daphne"):
            environment["SERVER_IMPLEMENTATION"] = "daphne" if kind == "daphne" else "uvicorn"
        _prefixes_used.update(environment[name] for name in ("CACHE_KEY_PREFIX", "CHANNEL_LAYER_PREFIX"))
        super().__init__(env=environment, log_path=log_path, port=port)
        self.kind = kind
        self.app = app
        self.argv = argv

    def command(self) -> list[str]:
        if self.argv:
            return [*self.argv, "--port", str(self.port)]
        if self.kind in ("server", "daphne"):  # the production server command (with the service's limits)
            return [*SERVER_COMMAND, "--bind", "127.0.0.1", "--port", str(self.port), "--application", self.app]
        if self.kind == "uvicorn":
            return [
                str(VENV_BIN / "uvicorn"),
                self.app,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--lifespan",
                "off",
                "--log-level",
                "warning",
            ]
        raise ValueError(f"unknown server kind {self.kind!r}")

    def start(self, *, wait: float = 60.0, health_path: str | None = "/health") -> Server:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=raise_open_files_limit,  # only setrlimit, before exec (ulimit -n)
            )
        self.wait_until_serving(wait, health_path)
        return self

    def wait_until_serving(self, timeout: float, health_path: str | None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if health_path is None:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                        return
                elif self.get(health_path, timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.kind} did not serve on {self.port} within {timeout}s:\n{self.log_tail()}")

    def get(self, path: str, timeout: float = 5.0, *, token: str | None = None) -> tuple[int, bytes]:
        """A GET on loopback, with a bearer token if given; (status, body), never an exception for
        an HTTP error status."""
        request = urllib.request.Request(f"{self.url}{path}")  # noqa: S310 - loopback
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def open_files_limit(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
        return 0

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""
