"""MAX_REQUEST_BODY_BYTES held by the production server while the body streams in (issue 14,
"Request handling"): before, a 1 GiB Content-Length to /health took daphne's RSS from 424 to
1153 MiB and a chunked 100 MiB body raised it by 92 MiB."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.server.conftest import (
    BODY_CAP,
    chunk,
    connect,
    parse_response,
    read_one_response,
    read_until_closed,
    rss_bytes,
)

GIB = 1024**3
MIB = 1024**2
# "A small multiple of the cap": what the server may grow by while refusing a huge body.
ALLOWED_GROWTH = 4 * BODY_CAP


class RssSampler:
    """The peak RSS of a process, sampled every few milliseconds while a test runs."""

    def __init__(self, pid: int):
        self.pid = pid
        self.baseline = rss_bytes(pid)
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(0.005)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, rss_bytes(self.pid))

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def stream_until_refused(sock, head: bytes, body_pieces, *, limit_seconds: float = 20.0) -> int:
    """Send ``head`` then body pieces until the server stops taking them; the bytes sent."""
    sent = 0
    sock.sendall(head)
    deadline = time.monotonic() + limit_seconds
    try:
        for piece in body_pieces:
            if time.monotonic() > deadline:
                break
            sock.sendall(piece)
            sent += len(piece)
    except OSError:  # reset or timed out: the server refused the rest
        pass
    return sent


def assert_payload_too_large(raw: bytes) -> dict:
    status, headers, body = parse_response(raw)
    assert status == 413
    assert headers["content-type"] == "application/json"
    document = json.loads(body)
    assert document["success"] is False
    assert document["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert document["error"]["details"] == {"max_bytes": BODY_CAP}
    assert document["meta"]["request_id"] == headers["x-request-id"]
    return document


def post_head(path: str, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_declared_length_over_the_cap_is_answered_413_before_any_body_is_sent(service):
    with connect(service.port) as sock:
        sock.sendall(post_head("/health", Content_Length=str(GIB), X_Request_ID="huge-upload-1"))
        raw = read_until_closed(sock, timeout=5)
    document = assert_payload_too_large(raw)
    assert document["meta"]["request_id"] == "huge-upload-1"


def test_posting_1_gib_with_a_content_length_to_health_does_not_grow_the_server(service):
    piece = b"x" * MIB
    with RssSampler(service.process.pid) as rss, connect(service.port, timeout=3) as sock:
        sent = stream_until_refused(sock, post_head("/health", Content_Length=str(GIB)), (piece for _ in range(1024)))
        raw = read_until_closed(sock, timeout=5)
    assert_payload_too_large(raw)
    assert sent < 64 * MIB, f"the server took {sent} bytes of a body it had refused"
    print(f"sent {sent / MIB:.1f} MiB, RSS grew by {rss.growth / MIB:.2f} MiB")
    assert rss.growth < ALLOWED_GROWTH, f"RSS grew by {rss.growth / MIB:.1f} MiB"


def test_posting_100_mib_chunked_to_health_is_refused_at_the_cap_without_growing_the_server(service):
    piece = chunk(b"y" * (64 * 1024))
    with RssSampler(service.process.pid) as rss, connect(service.port, timeout=3) as sock:
        head = post_head("/health", Transfer_Encoding="chunked")
        sent = stream_until_refused(sock, head, (piece for _ in range(1600)))  # 100 MiB
        raw = read_until_closed(sock, timeout=5)
    assert_payload_too_large(raw)
    assert sent < 64 * MIB, f"the server took {sent} bytes of a body it had refused"
    print(f"sent {sent / MIB:.1f} MiB, RSS grew by {rss.growth / MIB:.2f} MiB")
    assert rss.growth < ALLOWED_GROWTH, f"RSS grew by {rss.growth / MIB:.1f} MiB"


def test_the_api_still_answers_after_refusing_huge_bodies(service):
    with connect(service.port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _, body = read_one_response(sock, timeout=5)
    assert status == 200
    assert json.loads(body)["status"] == "healthy"


@pytest.mark.parametrize("size", [BODY_CAP, BODY_CAP + 1])
def test_a_declared_body_reaches_the_application_up_to_the_cap_exactly(probe, size):
    with connect(probe.port) as sock:
        sock.sendall(post_head("/upload", Content_Length=str(size)))
        if size > BODY_CAP:
            assert_payload_too_large(read_until_closed(sock, timeout=5))
            return
        sock.sendall(b"z" * size)
        status, _, body = read_one_response(sock, timeout=10)
    assert status == 200
    assert json.loads(body) == {"received": size, "content_length": str(size)}


@pytest.mark.parametrize("size", [BODY_CAP, BODY_CAP + 1])
def test_a_chunked_body_reaches_the_application_with_its_length_up_to_the_cap_exactly(probe, size):
    pieces = [chunk(b"c" * 1000) for _ in range(size // 1000)] + [chunk(b"c" * (size % 1000)), b"0\r\n\r\n"]
    with connect(probe.port) as sock:
        stream_until_refused(sock, post_head("/upload", Transfer_Encoding="chunked"), pieces)
        if size > BODY_CAP:
            assert_payload_too_large(read_until_closed(sock, timeout=5))
            return
        status, _, body = read_one_response(sock, timeout=10)
    assert status == 200
    # The application is told the length, so Django reads the body instead of seeing it empty.
    assert json.loads(body) == {"received": size, "content_length": str(size)}
