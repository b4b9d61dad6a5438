"""``python -m secureconnect.server``: its options come from the environment, a bad one stops it
with one line, and the start-up check treats it as a serving process."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from bench.processes import ROOT, SERVER_COMMAND, ServiceProcess, free_port
from tests.server.conftest import IMPLEMENTATIONS, server_environment


def run_briefly(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        SERVER_COMMAND, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("WS_PING_INTERVAL", "often", "WS_PING_INTERVAL must be a number, not 'often'"),
        ("WS_PING_TIMEOUT", "0", "WS_PING_TIMEOUT must be at least 0.1, not 0.0"),
        ("HTTP_HEADER_TIMEOUT", "-1", "HTTP_HEADER_TIMEOUT must be at least 0.1, not -1.0"),
        ("SERVER_PORT", "eighty", "SERVER_PORT must be a whole number, not 'eighty'"),
        ("SERVER_IMPLEMENTATION", "gunicorn", "SERVER_IMPLEMENTATION must be one of uvicorn, daphne, not 'gunicorn'"),
    ],
)
def test_a_bad_setting_stops_the_server_with_one_line(tmp_path, name, value, message):
    result = run_briefly({**server_environment(tmp_path), name: value})
    assert result.returncode == 2
    assert result.stderr.strip() == f"Configuration error: {message}"


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_the_address_comes_from_server_host_and_server_port(tmp_path, implementation):
    port = free_port()
    env = {**server_environment(tmp_path, implementation), "SERVER_HOST": "127.0.0.1", "SERVER_PORT": str(port)}
    process = ServiceProcess(env=env, log_path=tmp_path / "server.log")
    process.command = lambda: list(SERVER_COMMAND)  # no --bind/--port: the environment decides
    process.port = port
    try:
        process.start()
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()["status"] == "healthy"
    finally:
        process.stop()


def test_uvicorn_on_uvloop_and_httptools_serves_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("SERVER_IMPLEMENTATION", raising=False)
    env = {**server_environment(tmp_path), "LOG_LEVEL": "INFO"}
    del env["SERVER_IMPLEMENTATION"]  # the default
    process = ServiceProcess(env=env, log_path=tmp_path / "server.log")
    try:
        process.start()
        response = httpx.get(f"{process.url}/health", timeout=5)
        assert response.status_code == 200
        assert "server" not in response.headers  # daphne would say "daphne"; uvicorn's header is off
        libraries = Path(f"/proc/{process.process.pid}/maps").read_text()
        assert "uvloop" in libraries and "httptools" in libraries
        assert f"with uvicorn on 127.0.0.1:{process.port}" in process.log_text()
    finally:
        process.stop()
