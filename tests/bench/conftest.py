"""Runs a benchmark's smoke version as its one documented command would, in a child process,
and checks it left nothing behind: no database, no process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
from django.conf import settings

from tests.signaling.conftest import redis_reachable

ROOT = Path(__file__).resolve().parents[2]
SMOKE_REDIS_URL = "redis://127.0.0.1:6379/8"  # not the real runs' database (7)


@dataclass
class SmokeRun:
    returncode: int
    output: str
    results: dict


def pg_server_url() -> str:
    db = settings.DATABASES["default"]
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/postgres"


def processes_marked(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def bench_databases(pid: int) -> list[str]:
    conn = psycopg2.connect(pg_server_url())
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"bench\\_%\\_{pid}",))
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


@pytest.fixture
def run_bench(tmp_path):
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        pytest.skip("the benchmarks run on PostgreSQL")
    if not redis_reachable():
        pytest.skip("the benchmarks need Redis on 127.0.0.1:6379")

    def run(module: str, *args: str, timeout: float = 120) -> SmokeRun:
        marker = f"BENCH_RUN_ID=smoke-{uuid.uuid4().hex}"
        out = tmp_path / f"{module.rsplit('.', 1)[-1]}.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
        env |= {"BENCH_PG_URL": pg_server_url(), "BENCH_REDIS_URL": SMOKE_REDIS_URL, "BENCH_RUN_ID": marker}
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--smoke", "--out", str(out), *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.terminate()  # the benchmark stops its servers and drops its database
            try:
                output, _ = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                output, _ = process.communicate()
            for pid in processes_marked(marker):
                os.kill(pid, signal.SIGKILL)
            pytest.fail(f"{module} --smoke did not finish in {timeout} s:\n{output[-4000:]}")
        assert not processes_marked(marker), f"{module} left processes running"
        assert not bench_databases(process.pid), f"{module} left its database behind"
        results = json.loads(out.read_text()) if out.exists() else {}
        return SmokeRun(process.returncode, output, results)

    return run
