"""WebSocket frames and messages are capped by the production server at the signaling protocol's
maximum (signaling.protocol.MAX_MESSAGE_BYTES) when a frame's header arrives, before its payload
is buffered; daphne's default was 1 MiB, read whole before the consumer could refuse it."""

from __future__ import annotations

import uuid

import pytest

from signaling.protocol import MAX_MESSAGE_BYTES
from tests.server.conftest import RawWebSocket, probe_events

OPCODE_CONTINUATION, OPCODE_TEXT, OPCODE_BINARY = 0x0, 0x1, 0x2
CLOSE_MESSAGE_TOO_BIG = 1009


@pytest.fixture
def socket(probe):
    path = f"/ws/frames-{uuid.uuid4().hex[:8]}"
    raw = RawWebSocket(probe.port, path)
    raw.path = path
    yield raw
    raw.close()


def received(probe, path: str) -> list[dict]:
    return [event for event in probe_events(probe, path) if event["event"] == "receive"]


@pytest.mark.parametrize("opcode", [OPCODE_TEXT, OPCODE_BINARY])
def test_a_frame_announcing_a_gigabyte_is_refused_before_its_payload(probe, socket, opcode):
    socket.send_header_only(opcode, 1024**3)  # and not one byte of the payload
    assert socket.read_close_code(timeout=5) == CLOSE_MESSAGE_TOO_BIG
    assert received(probe, socket.path) == []


def test_a_message_of_the_maximum_size_is_delivered(probe, socket):
    socket.send_frame(OPCODE_TEXT, b"m" * MAX_MESSAGE_BYTES)
    opcode, payload = socket.read_frame(timeout=5)
    assert (opcode, len(payload)) == (OPCODE_TEXT, MAX_MESSAGE_BYTES)
    assert [event["size"] for event in received(probe, socket.path)] == [MAX_MESSAGE_BYTES]


def test_one_byte_over_the_maximum_is_refused(probe, socket):
    socket.send_frame(OPCODE_TEXT, b"m" * (MAX_MESSAGE_BYTES + 1))
    assert socket.read_close_code(timeout=5) == CLOSE_MESSAGE_TOO_BIG
    assert received(probe, socket.path) == []


def test_a_message_over_the_maximum_in_small_fragments_is_refused(probe, socket):
    half = MAX_MESSAGE_BYTES // 2 + 1
    socket.send_frame(OPCODE_TEXT, b"f" * half, fin=False)
    socket.send_frame(OPCODE_CONTINUATION, b"f" * half, fin=True)
    assert socket.read_close_code(timeout=5) == CLOSE_MESSAGE_TOO_BIG
    assert received(probe, socket.path) == []
