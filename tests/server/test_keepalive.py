"""Protocol-level keepalive of the production server (issue 12, item 2): WS_PING_INTERVAL and
WS_PING_TIMEOUT. A client that only answers pings is never closed; one that stops answering is
dropped within interval + timeout and the application is told with code 4408."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from websockets.asyncio.client import connect as ws_connect

from bench.processes import wait_until
from secureconnect.server import PING_TIMEOUT_DISCONNECT_CODE
from tests.server.conftest import PING_INTERVAL, PING_TIMEOUT, RawWebSocket, probe_events

CLIENT = Path(__file__).with_name("ws_client.py")
OPCODE_TEXT, OPCODE_PING, OPCODE_PONG = 0x1, 0x9, 0xA


def unique_path(name: str) -> str:
    return f"/ws/{name}-{uuid.uuid4().hex[:8]}"


def disconnects(probe, path: str) -> list[dict]:
    return [event for event in probe_events(probe, path) if event["event"] == "disconnect"]


class ClientProcess:
    """``tests/server/ws_client.py`` connected to ``url``; stopped and killed by PID."""

    def __init__(self, url: str):
        self.process = subprocess.Popen([sys.executable, str(CLIENT), url], stdout=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self.process.stdout], [], [], 15)
        assert ready and self.process.stdout.readline().strip() == "open", "the client did not connect"

    def signal(self, number: int) -> None:
        os.kill(self.process.pid, number)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self.process.stdout.close()


def test_the_ping_timeout_code_is_4408():
    # Pinned: the signaling consumers date such a drop at detection time minus WS_PING_TIMEOUT.
    assert PING_TIMEOUT_DISCONNECT_CODE == 4408


def test_a_client_that_only_answers_pings_stays_connected(probe):
    path = unique_path("quiet")
    socket = RawWebSocket(probe.port, path)
    pings = 0
    try:
        held = 3 * (PING_INTERVAL + PING_TIMEOUT)
        deadline = time.monotonic() + held
        while time.monotonic() < deadline:
            try:
                opcode, payload = socket.read_frame(timeout=min(deadline - time.monotonic(), 0.5))
            except TimeoutError:
                continue
            assert opcode == OPCODE_PING, f"unexpected frame {opcode:#x} from a server we never wrote to"
            pings += 1
            socket.send_frame(OPCODE_PONG, payload)
        # The server pinged all along, and the socket still carries messages both ways.
        assert pings >= held / PING_INTERVAL - 2
        socket.send_frame(OPCODE_TEXT, b"still here")
        opcode, payload = socket.read_frame(timeout=5)
        while opcode == OPCODE_PING:
            socket.send_frame(OPCODE_PONG, payload)
            opcode, payload = socket.read_frame(timeout=5)
        assert (opcode, payload) == (OPCODE_TEXT, b"still here")
        assert disconnects(probe, path) == []
    finally:
        socket.close()


def test_a_stopped_client_is_dropped_within_interval_plus_timeout_and_the_app_sees_4408(probe):
    path = unique_path("stopped")
    client = ClientProcess(f"{probe.ws_url}{path}")
    try:
        time.sleep(1.5 * PING_INTERVAL)  # alive through at least one ping
        assert disconnects(probe, path) == []
        client.signal(signal.SIGSTOP)
        stopped_at = time.time()
        (event,) = wait_until(
            lambda: disconnects(probe, path), timeout=PING_INTERVAL + PING_TIMEOUT + 5, message="the drop"
        )
    finally:
        client.kill()
    assert event["code"] == PING_TIMEOUT_DISCONNECT_CODE
    detected_after = event["at"] - stopped_at
    assert PING_TIMEOUT - 0.3 <= detected_after <= PING_INTERVAL + PING_TIMEOUT + 0.5


def test_a_lost_tcp_connection_keeps_code_1006(probe):
    path = unique_path("killed")
    client = ClientProcess(f"{probe.ws_url}{path}")
    client.kill()  # kill -9: the kernel closes the socket, no close frame
    (event,) = wait_until(lambda: disconnects(probe, path), timeout=5, message="the drop")
    assert event["code"] == 1006


def test_a_clean_close_keeps_the_peers_code(probe):
    path = unique_path("closed")

    async def close_with_4000():
        async with ws_connect(f"{probe.ws_url}{path}", ping_interval=None) as socket:
            await socket.close(code=4000, reason="bye")

    asyncio.run(close_with_4000())
    (event,) = wait_until(lambda: disconnects(probe, path), timeout=5, message="the close")
    assert event["code"] == 4000
