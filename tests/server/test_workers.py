"""``SERVER_WORKERS``: the production command runs that many worker processes on one address;
a burst of keep-alive connections is spread over them; a caller and a callee relay whichever
workers they land on (the Redis channel layer), and stopping the command, or killing it with
kill -9, stops every worker."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from bench.processes import ServiceProcess, wait_until
from tests.server.conftest import IMPLEMENTATIONS, server_environment
from tests.signaling.conftest import SIGNALING_PATH, delete_prefix, make_call_with, unique_prefix
from tests.support.servers import service_env

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

WAIT = 10


def workers_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" not in status.read_text()


@pytest.fixture(params=IMPLEMENTATIONS)
def two_workers(request, transactional_db, tmp_path):
    prefix = unique_prefix()
    env = service_env(
        prefix=prefix, spool_path=tmp_path / "spool.sqlite3", SERVER_WORKERS=2, SERVER_IMPLEMENTATION=request.param
    )
    process = ServiceProcess(env=env, log_path=tmp_path / "service.log")
    try:
        process.start(wait=60)
        wait_until(lambda: len(workers_of(process.process.pid)) == 2, timeout=10, message="two workers")
        wait_until(
            lambda: all(sockets_on(pid, process.port, LISTEN) for pid in workers_of(process.process.pid)),
            timeout=30,
            message="both workers listening",
        )
        yield process
    finally:
        process.kill()
        delete_prefix(prefix)


ESTABLISHED, LISTEN = "01", "0A"  # TCP states as /proc/net/tcp writes them


def sockets_on(pid: int, port: int, state: str) -> int:
    """How many TCP sockets on local ``port`` in ``state`` process ``pid`` holds (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().name
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[9]
        count += local_port == port and fields[3] == state and inode in inodes
    return count


async def test_a_burst_of_keep_alive_connections_is_spread_over_the_workers(two_workers):
    """60 clients connecting at once (as a proxy's pool or a load test does) and staying: each of
    the two workers serves a fair share, not one worker all of them (a shared listening socket let
    the first worker awake accept the whole burst). 60 hashed at random split below 15/45 about
    once in 20,000 runs."""
    workers = workers_of(two_workers.process.pid)
    connections = [socket.create_connection(("127.0.0.1", two_workers.port), timeout=WAIT) for _ in range(60)]
    try:
        for connection in connections:
            connection.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        for connection in connections:  # answered: accepted by a worker, and still open
            assert connection.recv(65536).startswith(b"HTTP/1.1 200")
        shares = [sockets_on(pid, two_workers.port, ESTABLISHED) for pid in workers]
        assert sum(shares) == 60 and min(shares) >= 15, shares
    finally:
        for connection in connections:
            connection.close()


@pytest.fixture
def call(transactional_db):
    return make_call_with()


async def test_two_workers_relay_a_call_and_stop_with_the_command(two_workers, call):
    workers = workers_of(two_workers.process.pid)
    path = f"{two_workers.ws_url}{SIGNALING_PATH}?call_id={call.id}"
    sockets = []
    for person in (call.caller, call.callees[0]):
        ws = await connect(path, additional_headers={"Authorization": f"Bearer {person.token}"}, proxy=None)
        assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] == "participants"
        sockets.append(ws)
    caller_ws, callee_ws = sockets
    assert json.loads(await asyncio.wait_for(caller_ws.recv(), WAIT))["type"] == "join"
    await caller_ws.send(json.dumps({"type": "offer", "sdp": "v=0 from a worker"}))
    assert json.loads(await asyncio.wait_for(callee_ws.recv(), WAIT))["sdp"] == "v=0 from a worker"
    for ws in sockets:
        await ws.close()

    two_workers.process.send_signal(signal.SIGTERM)
    assert two_workers.process.wait(WAIT) == 0
    wait_until(lambda: not any(alive(pid) for pid in workers), timeout=WAIT, message="workers stopped")


async def test_workers_go_when_the_command_is_killed(two_workers):
    workers = workers_of(two_workers.process.pid)
    two_workers.kill()  # kill -9: the command's own shutdown code never runs
    wait_until(lambda: not any(alive(pid) for pid in workers), timeout=WAIT, message="workers gone")


async def test_several_workers_need_redis(tmp_path):
    env = {**server_environment(tmp_path), "SERVER_WORKERS": "2"}
    process = ServiceProcess(env=env, log_path=tmp_path / "service.log")
    with pytest.raises(RuntimeError, match="exited with 2"):
        process.start(wait=30)
    assert "SERVER_WORKERS > 1 needs REDIS_URL" in process.log_text()
