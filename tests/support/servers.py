"""Real service processes for tests: the production server on a free loopback port, stopped by PID
(``bench.processes`` is the process itself; here is what tests add: their database, their Redis
prefixes, a second redis-server)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx

from bench.processes import ServiceProcess, free_port, wait_until


def test_database_url() -> str:
    """This test process's (PostgreSQL) test database, as a service process's DATABASE_URL."""
    from django.db import connection

    db = connection.settings_dict
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def service_env(*, prefix: str, spool_path: Path, redis_url: str = "redis://127.0.0.1:6379/0", **extra) -> dict:
    """The environment of a service process a test starts: the test database, Redis with a
    channel-layer prefix of the test's own, a spool of its own, the test's JWT secret, no push;
    ``extra`` adds or overrides variables (values are turned into strings)."""
    from django.conf import settings

    return {
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": redis_url,
        "CHANNEL_LAYER_PREFIX": prefix,
        "SPOOL_PATH": str(spool_path),
        "JWT_SECRET": settings.JWT_SECRET,
        "ENV": "development",
        "PUSH_PROVIDER": "none",
        **{name: str(value) for name, value in extra.items()},
    }


def service_ready(process: ServiceProcess) -> bool:
    """``/health/ready`` answers 200 (the database and the channel layer are reachable)."""
    try:
        return httpx.get(f"{process.url}/health/ready", timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def start_service(*, env: dict, log_path: Path, ready: bool = True, wait: float = 60.0) -> ServiceProcess:
    """Start a service process with ``env`` (see ``service_env``) and wait until it listens and,
    with ``ready``, until ``/health/ready`` says so. The caller stops it (``stop`` or ``kill``)."""
    process = ServiceProcess(env=env, log_path=log_path)
    try:
        process.start(wait=wait)
        if ready:
            wait_until(lambda: service_ready(process), timeout=wait, message=f"service on {process.port} ready")
    except BaseException:
        process.kill()
        raise
    return process


class RedisServer:
    """A ``redis-server`` of the test's own on a free loopback port (no persistence), stopped by PID."""

    def __init__(self, *, log_path: Path, port: int | None = None):
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, wait: float = 10.0) -> RedisServer:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"redis-server did not listen on {self.port} within {wait}s")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)
