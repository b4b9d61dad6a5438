"""Relaying between the participants of a call: every message type, targeting, sender
stamping, errors that keep the socket open, and the limits that close it."""

import json

import pytest
from channels.db import database_sync_to_async

from calls.models import CallParticipant
from tests.signaling.conftest import expect_refusal, frame, receive_type

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

SDP = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
CANDIDATE = {"candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host", "sdpMid": "0", "sdpMLineIndex": 0}


async def connected_pair(sockets, call):
    """Caller and callee sockets, with the caller past the callee's join."""
    caller = await sockets.signaling(call.id, call.caller)
    callee = await sockets.signaling(call.id, call.callees[0])
    await receive_type(caller, "join")
    return caller, callee


@pytest.mark.parametrize(
    ("message_type", "fields"),
    [
        ("offer", {"sdp": SDP}),
        ("answer", {"sdp": SDP}),
        ("ice_candidate", {"candidate": CANDIDATE}),
        ("join", {}),
        ("leave", {}),
        ("mute_audio", {"muted": True}),
        ("mute_video", {"muted": False}),
    ],
)
async def test_every_message_type_reaches_the_other_participant(sockets, two_party, message_type, fields):
    caller, callee = await connected_pair(sockets, two_party)
    await caller.send_to(text_data=frame(type=message_type, **fields))
    received = await receive_type(callee, message_type)
    assert {k: received[k] for k in fields} == fields
    assert received["sender_id"] == two_party.caller.id
    assert received["call_id"] == two_party.id
    assert received["timestamp"].endswith("Z")
    assert await caller.receive_nothing(timeout=0.2)  # never back to the sender


async def test_ping_is_answered_with_pong_to_the_sender_only(sockets, two_party):
    caller, callee = await connected_pair(sockets, two_party)
    await caller.send_to(text_data=frame(type="ping"))
    await receive_type(caller, "pong")
    assert await callee.receive_nothing(timeout=0.2)


async def test_the_server_overwrites_sender_call_and_timestamp(sockets, two_party):
    caller, callee = await connected_pair(sockets, two_party)
    forged = frame(
        type="offer",
        sdp=SDP,
        sender_id=two_party.callees[0].id,
        call_id="00000000-0000-0000-0000-000000000000",
        timestamp="1999-01-01T00:00:00Z",
        extra="dropped",
    )
    await caller.send_to(text_data=forged)
    received = await receive_type(callee, "offer")
    assert received["sender_id"] == two_party.caller.id
    assert received["call_id"] == two_party.id
    assert received["timestamp"] != "1999-01-01T00:00:00Z"
    assert "extra" not in received


async def test_a_targeted_message_reaches_only_its_target(sockets, three_party):
    caller = await sockets.signaling(three_party.id, three_party.caller)
    first = await sockets.signaling(three_party.id, three_party.callees[0])
    second = await sockets.signaling(three_party.id, three_party.callees[1])
    await receive_type(caller, "join")
    await receive_type(caller, "join")
    await receive_type(first, "join")

    await caller.send_to(text_data=frame(type="offer", sdp=SDP, target_id=three_party.callees[1].id))
    received = await receive_type(second, "offer")
    assert received["target_id"] == three_party.callees[1].id
    assert await first.receive_nothing(timeout=0.2)
    assert await caller.receive_nothing(timeout=0.1)


async def test_an_untargeted_message_reaches_every_other_participant(sockets, three_party):
    caller = await sockets.signaling(three_party.id, three_party.caller)
    first = await sockets.signaling(three_party.id, three_party.callees[0])
    second = await sockets.signaling(three_party.id, three_party.callees[1])
    await receive_type(caller, "join")
    await receive_type(caller, "join")
    await receive_type(first, "join")

    await first.send_to(text_data=frame(type="ice_candidate", candidate=CANDIDATE))
    assert (await receive_type(caller, "ice_candidate"))["sender_id"] == three_party.callees[0].id
    assert (await receive_type(second, "ice_candidate"))["sender_id"] == three_party.callees[0].id
    assert await first.receive_nothing(timeout=0.2)


async def test_a_participant_on_two_devices_gets_a_targeted_message_on_both(sockets, two_party):
    caller = await sockets.signaling(two_party.id, two_party.caller)
    phone = await sockets.signaling(two_party.id, two_party.callees[0])
    laptop = await sockets.signaling(two_party.id, two_party.callees[0])
    await receive_type(caller, "join")
    await receive_type(caller, "join")
    await caller.send_to(text_data=frame(type="offer", sdp=SDP, target_id=two_party.callees[0].id))
    await receive_type(phone, "offer")
    await receive_type(laptop, "offer")


# --- presence --------------------------------------------------------------------------------------


async def test_a_newcomer_learns_who_is_connected_and_the_others_hear_join(sockets, three_party):
    caller = await sockets.signaling(three_party.id, three_party.caller)
    assert caller.participants == []
    first = await sockets.signaling(three_party.id, three_party.callees[0])
    assert first.participants == [three_party.caller.id]
    joined = await receive_type(caller, "join")
    assert joined["sender_id"] == three_party.callees[0].id and joined["call_id"] == three_party.id

    second = await sockets.signaling(three_party.id, three_party.callees[1])
    assert sorted(second.participants) == sorted([three_party.caller.id, three_party.callees[0].id])
    assert (await receive_type(caller, "join"))["sender_id"] == three_party.callees[1].id
    assert (await receive_type(first, "join"))["sender_id"] == three_party.callees[1].id


async def test_the_others_hear_reconnecting_then_leave_when_a_socket_goes_for_good(sockets, two_party, settings):
    settings.CALL_RECONNECT_GRACE = 0.5
    caller, callee = await connected_pair(sockets, two_party)
    await callee.disconnect()
    reconnecting = await receive_type(caller, "participant_reconnecting")
    assert reconnecting["sender_id"] == two_party.callees[0].id
    assert await caller.receive_nothing(timeout=0.3)  # within the grace: no leave yet
    left = await receive_type(caller, "leave", timeout=3)
    assert left["sender_id"] == two_party.callees[0].id

    again = await sockets.signaling(two_party.id, two_party.callees[0])
    assert again.participants == [two_party.caller.id]  # the one who left is no longer listed
    await caller.disconnect()
    await receive_type(again, "participant_reconnecting")
    await receive_type(again, "leave", timeout=3)
    await again.disconnect()
    assert (await sockets.signaling(two_party.id, two_party.caller)).participants == []


# --- mute state is recorded on the call -------------------------------------------------------------


def participant(call_id, user_id) -> CallParticipant:
    return CallParticipant.objects.get(call_id=call_id, user_id=user_id)


async def test_mute_audio_is_recorded_on_the_call(sockets, two_party):
    caller, callee = await connected_pair(sockets, two_party)
    await caller.send_to(text_data=frame(type="mute_audio", muted=True))
    await receive_type(callee, "mute_audio")
    row = await database_sync_to_async(participant)(two_party.id, two_party.caller.id)
    assert row.is_muted is True and row.is_video_on is True


async def test_mute_video_turns_video_off_on_the_call(sockets, two_party):
    caller, callee = await connected_pair(sockets, two_party)
    await callee.send_to(text_data=frame(type="mute_video", muted=True))
    await receive_type(caller, "mute_video")
    row = await database_sync_to_async(participant)(two_party.id, two_party.callees[0].id)
    assert row.is_video_on is False and row.is_muted is False
    await callee.send_to(text_data=frame(type="mute_video", muted=False))
    await receive_type(caller, "mute_video")
    row = await database_sync_to_async(participant)(two_party.id, two_party.callees[0].id)
    assert row.is_video_on is True


# --- errors keep the socket open ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_message"),
        (json.dumps({"sdp": SDP}), "missing_field"),
        (json.dumps({"type": "renegotiate"}), "unknown_type"),
        (json.dumps({"type": 7}), "unknown_type"),
        (json.dumps({"type": "offer"}), "missing_field"),
        (json.dumps({"type": "answer", "sdp": 12}), "invalid_field"),
        (json.dumps({"type": "ice_candidate", "candidate": "candidate:1"}), "invalid_field"),
        (json.dumps({"type": "ice_candidate"}), "missing_field"),
        (json.dumps({"type": "mute_audio", "muted": "yes"}), "invalid_field"),
        (json.dumps({"type": "mute_video", "muted": 1}), "invalid_field"),
        (json.dumps({"type": "mute_audio"}), "missing_field"),
        (json.dumps({"type": "offer", "sdp": SDP, "target_id": "someone"}), "invalid_field"),
        (
            json.dumps({"type": "offer", "sdp": SDP, "target_id": "6f1c2a3e-0000-4000-8000-000000000000"}),
            "invalid_target",
        ),
        (json.dumps({"type": "offer", "sdp": "x" * (64 * 1024)}), "message_too_large"),
    ],
)
async def test_a_bad_message_gets_an_error_and_the_socket_stays_open(sockets, two_party, text, code):
    caller, callee = await connected_pair(sockets, two_party)
    await caller.send_to(text_data=text)
    error = await receive_type(caller, "error")
    assert error["code"] == code and error["message"]
    assert await callee.receive_nothing(timeout=0.1)
    await caller.send_to(text_data=frame(type="ping"))
    await receive_type(caller, "pong")


async def test_targeting_yourself_is_an_error(sockets, two_party):
    caller, _ = await connected_pair(sockets, two_party)
    await caller.send_to(text_data=frame(type="offer", sdp=SDP, target_id=two_party.caller.id))
    assert (await receive_type(caller, "error"))["code"] == "invalid_target"


async def test_a_binary_frame_gets_an_error_and_the_socket_stays_open(sockets, two_party):
    caller, _ = await connected_pair(sockets, two_party)
    await caller.send_to(bytes_data=b"\x00\x01")
    assert (await receive_type(caller, "error"))["code"] == "binary_not_supported"
    await caller.send_to(text_data=frame(type="ping"))
    await receive_type(caller, "pong")


async def test_a_message_of_exactly_64_kib_is_relayed(sockets, two_party):
    caller, callee = await connected_pair(sockets, two_party)
    padding = 64 * 1024 - len(frame(type="offer", sdp=""))
    await caller.send_to(text_data=frame(type="offer", sdp="x" * padding))
    assert len((await receive_type(callee, "offer"))["sdp"]) == padding


async def test_a_client_that_keeps_sending_garbage_is_closed(sockets, two_party):
    caller, callee = await connected_pair(sockets, two_party)
    for _ in range(20):
        await caller.send_to(text_data="garbage")
        await receive_type(caller, "error")
    await caller.send_to(text_data="garbage")
    await receive_type(caller, "error")
    error = await expect_refusal(caller, 4490)
    assert error["message"] == "Too many invalid messages."
    assert error["code"] == "policy_violation"
    assert (await receive_type(callee, "participant_reconnecting"))["sender_id"] == two_party.caller.id


async def test_a_client_over_the_message_rate_is_closed(sockets, two_party, settings):
    settings.WS_RATE_LIMIT = 1
    settings.WS_RATE_BURST = 5
    caller, callee = await connected_pair(sockets, two_party)
    for _ in range(5):
        await caller.send_to(text_data=frame(type="ice_candidate", candidate=CANDIDATE))
    for _ in range(5):
        await receive_type(callee, "ice_candidate")
    await caller.send_to(text_data=frame(type="ice_candidate", candidate=CANDIDATE))
    error = await expect_refusal(caller, 4490)
    assert "rate" in error["message"]
    await receive_type(callee, "participant_reconnecting")


async def test_a_burst_of_200_candidates_is_within_the_default_limits(sockets, two_party):
    caller, callee = await connected_pair(sockets, two_party)
    for n in range(200):
        await caller.send_to(text_data=frame(type="ice_candidate", candidate={**CANDIDATE, "sdpMLineIndex": n}))
    received = [(await receive_type(callee, "ice_candidate"))["candidate"]["sdpMLineIndex"] for _ in range(200)]
    assert received == list(range(200))


# --- keep-alive -------------------------------------------------------------------------------------


async def test_application_silence_closes_nothing(sockets, two_party, monkeypatch):
    """Keepalive is the server's protocol pings: a client that never sends a message (an old
    client answering only pings) keeps its socket, and the registry's checks run meanwhile."""
    monkeypatch.setattr("signaling.registry.TICK", 0.05)
    caller, callee = await connected_pair(sockets, two_party)
    assert await callee.receive_nothing(timeout=1.5)  # 30 registry ticks, no message either way
    await caller.send_to(text_data=frame(type="ice_candidate", candidate=CANDIDATE))
    assert (await receive_type(callee, "ice_candidate"))["sender_id"] == two_party.caller.id


async def test_application_pings_are_answered(sockets, two_party):
    caller = await sockets.signaling(two_party.id, two_party.caller)
    for _ in range(3):
        await caller.send_to(text_data=frame(type="ping"))
        assert (await receive_type(caller, "pong"))["type"] == "pong"
