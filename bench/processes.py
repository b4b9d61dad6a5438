"""A real service process on a free loopback port, stopped by PID: what the benchmarks and the
tests that start servers share (tests/support/servers.py builds on it; bench/ never imports
tests/)."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
# The production server command (README, Dockerfile, compose), from this virtualenv.
SERVER_COMMAND = (sys.executable, "-m", "secureconnect.server")
# The operator's bearer token for /metrics and /health/ready's full report, given to every
# service process a test starts (a test may override it through ``env``).
METRICS_TOKEN = secrets.token_urlsafe(32)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServiceProcess:
    """``python -m secureconnect.server`` (daphne with the production limits) with the given
    environment, serving ``application`` (default: the service's ``ASGI_APPLICATION``).

    Output goes to a log file the test can read (``log_text``) and print on failure."""

    def __init__(self, *, env: dict[str, str], log_path: Path, port: int | None = None, application: str | None = None):
        self.port = port or free_port()
        self.env = env
        self.log_path = log_path
        self.application = application
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        command = [*SERVER_COMMAND, "--bind", "127.0.0.1", "--port", str(self.port)]
        return [*command, "--application", self.application] if self.application else command

    def start(self, *, wait: float = 30.0) -> ServiceProcess:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "secureconnect.settings",
            "PYTHONUNBUFFERED": "1",
            "METRICS_TOKEN": METRICS_TOKEN,
            "SERVER_WORKERS": "1",  # one process, whose PID is the server's (a test may ask for more)
            **self.env,
        }
        env.pop("PYTEST_CURRENT_TEST", None)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed on stop
        self.process = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.wait_until_listening(wait)
        return self

    def wait_until_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"service did not listen on {self.port} within {timeout}s:\n{self.log_text()}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=15)

    def operator_client(self) -> httpx.Client:
        """A client with the operator's token: /metrics and the full /health/ready report."""
        return self.client(self.env.get("METRICS_TOKEN", METRICS_TOKEN))


def wait_until(predicate, *, timeout: float, interval: float = 0.1, message: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; bounded in time."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"{message} not met within {timeout}s (last: {last!r})")
