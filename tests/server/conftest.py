"""Real production-server processes (``python -m secureconnect.server``) on loopback, and the raw
clients the tests attack them with. Every wait is bounded; processes are stopped by PID."""

from __future__ import annotations

import base64
import os
import socket
import struct
import time
from pathlib import Path

import httpx
import pytest

from bench.processes import ServiceProcess

# Small limits so that each attack takes seconds.
BODY_CAP = 1024 * 1024  # MAX_REQUEST_BODY_BYTES in these tests
HEADER_TIMEOUT = 2.0  # HTTP_HEADER_TIMEOUT
PING_INTERVAL = 1.0  # WS_PING_INTERVAL
PING_TIMEOUT = 1.0  # WS_PING_TIMEOUT
PROBE = "tests.server.probe:application"
# SERVER_IMPLEMENTATION: every test of a server process runs under each (uvicorn, the default, first).
IMPLEMENTATIONS = ("uvicorn", "daphne")


def server_environment(tmp_path: Path, implementation: str = "uvicorn") -> dict[str, str]:
    return {
        "SERVER_IMPLEMENTATION": implementation,
        "ENV": "development",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'service.sqlite3'}",
        "REDIS_URL": "",
        "DB_STARTUP_MODE": "off",
        "SPOOL_PATH": str(tmp_path / "spool.sqlite3"),
        "PUSH_PROVIDER": "none",
        "LOG_LEVEL": "WARNING",
        "MAX_REQUEST_BODY_BYTES": str(BODY_CAP),
        "HTTP_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "WS_PING_INTERVAL": str(PING_INTERVAL),
        "WS_PING_TIMEOUT": str(PING_TIMEOUT),
    }


def _started(tmp_path_factory, name: str, application: str | None, implementation: str):
    folder = tmp_path_factory.mktemp(f"{name}-{implementation}")
    process = ServiceProcess(
        env=server_environment(folder, implementation), log_path=folder / "server.log", application=application
    )
    process.start()
    return process


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def implementation(request) -> str:
    """SERVER_IMPLEMENTATION of the server processes a test starts."""
    return request.param


@pytest.fixture(scope="module")
def service(tmp_path_factory, implementation):
    """The service itself (secureconnect.asgi) under the production server."""
    process = _started(tmp_path_factory, "service", None, implementation)
    try:
        yield process
    finally:
        process.stop()
        print(process.log_text()[-5000:])


@pytest.fixture(scope="module")
def probe(tmp_path_factory, implementation):
    """The probe application (tests/server/probe.py) under the production server."""
    process = _started(tmp_path_factory, "probe", PROBE, implementation)
    try:
        yield process
    finally:
        process.stop()
        print(process.log_text()[-5000:])


# --- the server process, from /proc --------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# --- raw HTTP -----------------------------------------------------------------------------------


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_until_closed(sock: socket.socket, *, timeout: float) -> bytes:
    """Everything the server sends until it closes (or resets) the connection; bounded in time."""
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"the server did not close the connection within {timeout}s (got {data[:200]!r})")


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def read_one_response(sock: socket.socket, *, timeout: float) -> tuple[int, dict[str, str], bytes]:
    """One response with a Content-Length, on a connection that may stay open."""
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        if b"\r\n\r\n" in data:
            status, headers, body = parse_response(data)
            if len(body) >= int(headers.get("content-length", "0")):
                return status, headers, body
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    raise AssertionError(f"no complete response within {timeout}s (got {data[:200]!r})")


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


# --- raw WebSocket (RFC 6455), so a test can send a frame header without its payload ----------


class RawWebSocket:
    def __init__(self, port: int, path: str, timeout: float = 5.0):
        self.sock = connect(port, timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            received = self.sock.recv(4096)
            assert received, "the server closed during the handshake"
            self.buffer += received
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    @staticmethod
    def frame_header(opcode: int, length: int, *, fin: bool = True) -> bytes:
        first = (0x80 if fin else 0) | opcode
        if length < 126:
            return struct.pack("!BB", first, 0x80 | length)
        if length < 1 << 16:
            return struct.pack("!BBH", first, 0x80 | 126, length)
        return struct.pack("!BBQ", first, 0x80 | 127, length)

    def send_frame(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        mask = os.urandom(4)
        self.sock.sendall(self.frame_header(opcode, len(payload), fin=fin) + mask + _mask(payload, mask))

    def send_header_only(self, opcode: int, length: int) -> None:
        """A frame that announces ``length`` bytes of payload, none of which follows."""
        self.sock.sendall(self.frame_header(opcode, length) + os.urandom(4))

    def _read_exactly(self, count: int, deadline: float) -> bytes:
        while len(self.buffer) < count:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            received = self.sock.recv(65536)
            if not received:
                raise ConnectionError("closed by the server")
            self.buffer += received
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def read_frame(self, *, timeout: float) -> tuple[int, bytes]:
        deadline = time.monotonic() + timeout
        first, second = self._read_exactly(2, deadline)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read_exactly(2, deadline))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read_exactly(8, deadline))
        return first & 0x0F, self._read_exactly(length, deadline)

    def read_close_code(self, *, timeout: float) -> int:
        """The code of the server's close frame (pings met on the way are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            opcode, payload = self.read_frame(timeout=max(deadline - time.monotonic(), 0.01))
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0]

    def close(self) -> None:
        self.sock.close()


def _mask(payload: bytes, mask: bytes) -> bytes:
    if not payload:
        return b""
    whole = int.from_bytes(payload, "big")
    key = int.from_bytes((mask * (len(payload) // 4 + 1))[: len(payload)], "big")
    return (whole ^ key).to_bytes(len(payload), "big")


def probe_events(probe, path: str) -> list[dict]:
    """What the probe application saw on the WebSocket at ``path``."""
    return [event for event in httpx.get(f"{probe.url}/events", timeout=5).json() if event["path"] == path]
