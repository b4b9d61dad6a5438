"""Server-side presence drives the call: grace and resume, connection_lost at the moment of the
drop, rights that follow the participant's state on open sockets, sessions that end, and sockets
that release everything whatever a handler raises. Through the real ASGI application, in one
process (tests/signaling/test_presence_processes.py does it across real server processes)."""

import asyncio
import time

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from accounts import tokens
from calls import services
from calls.models import Call, CallParticipant
from signaling import metrics
from signaling.limits import signaling_slots
from signaling.registry import registry
from tests.signaling.conftest import Person, expect_refusal, frame, make_call_with, make_person, receive_type
from tests.signaling.test_call_state import arest

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

CANDIDATE = {"candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host", "sdpMid": "0", "sdpMLineIndex": 0}


@pytest.fixture(autouse=True)
def fast_registry(monkeypatch):
    monkeypatch.setattr("signaling.registry.TICK", 0.05)


async def answered_call(sockets, callees: int = 1):
    """An answered call with every participant's signaling socket open, past the joins."""
    call = await database_sync_to_async(make_call_with)(callees=callees)
    for callee in call.callees:
        await arest(callee, f"/v1/calls/{call.id}/join")
    caller = await sockets.signaling(call.id, call.caller)
    opened = [caller]
    for callee in call.callees:
        opened.append(await sockets.signaling(call.id, callee))
        for earlier in opened[:-1]:
            await receive_type(earlier, "join")
    return call, opened


async def drain(socket, timeout=0.3) -> list[dict]:
    got = []
    while not await socket.receive_nothing(timeout=timeout):
        got.append(await socket.receive_json_from())
    return got


async def eventually(condition, timeout=2.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def call_row(call_id) -> Call:
    return Call.objects.get(pk=call_id)


# --- grace and resume -------------------------------------------------------------------------------


async def test_a_resume_delivers_every_message_of_the_gap_in_order_once(sockets, settings):
    settings.CALL_RECONNECT_GRACE = 10
    call, (caller, callee) = await answered_call(sockets)
    await callee.disconnect()
    assert (await receive_type(caller, "participant_reconnecting"))["sender_id"] == call.callees[0].id

    for n in range(50):  # half targeted, half broadcast
        target = {"target_id": call.callees[0].id} if n % 2 else {}
        await caller.send_to(text_data=frame(type="offer", sdp=f"sdp-{n}", **target))
    await asyncio.sleep(0.3)

    again = await sockets.signaling(call.id, call.callees[0])
    assert again.participants == [call.caller.id]
    received = [m for m in await drain(again) if m["type"] == "offer"]
    assert [m["sdp"] for m in received] == [f"sdp-{n}" for n in range(50)]  # all, in order, once
    assert all(m["sender_id"] == call.caller.id for m in received)

    heard = await drain(caller)
    assert [m["type"] for m in heard] == ["participant_resumed"]  # no join, no leave
    assert heard[0]["sender_id"] == call.callees[0].id
    row = await database_sync_to_async(call_row)(call.id)
    assert row.status == Call.Status.ACTIVE

    await caller.send_to(text_data=frame(type="ice_candidate", candidate=CANDIDATE))
    assert (await receive_type(again, "ice_candidate"))["sender_id"] == call.caller.id  # live again


async def test_messages_past_the_resume_buffer_are_dropped_counted_and_reported(sockets, settings):
    settings.CALL_RECONNECT_GRACE = 10
    settings.RESUME_BUFFER_MESSAGES = 10
    call, (caller, callee) = await answered_call(sockets)
    before = metrics.resume_buffer_dropped._value.get()
    await callee.disconnect()
    await receive_type(caller, "participant_reconnecting")
    for n in range(15):
        await caller.send_to(text_data=frame(type="offer", sdp=f"sdp-{n}"))
    await asyncio.sleep(0.3)

    again = await sockets.signaling(call.id, call.callees[0])
    received = await drain(again)
    assert [m["sdp"] for m in received if m["type"] == "offer"] == [f"sdp-{n}" for n in range(10)]
    incomplete = [m for m in received if m["type"] == "resume_incomplete"]
    assert len(incomplete) == 1 and incomplete[0]["dropped"] == 5
    assert metrics.resume_buffer_dropped._value.get() - before == 5


async def test_past_the_grace_the_call_ends_connection_lost_when_the_participant_dropped(sockets, settings):
    settings.CALL_RECONNECT_GRACE = 0.6
    call, (caller, callee) = await answered_call(sockets)
    await asyncio.sleep(1.1)  # a second of talk
    dropped = timezone.now()
    await callee.disconnect()
    await receive_type(caller, "participant_reconnecting")
    assert await caller.receive_nothing(timeout=0.3)  # still within the grace

    left = await receive_type(caller, "leave", timeout=3)
    assert left["sender_id"] == call.callees[0].id and left["reason"] == "connection_lost"
    ended = await receive_type(caller, "call_ended", timeout=3)
    assert ended["reason"] == "connection_lost"

    row = await database_sync_to_async(call_row)(call.id)
    assert row.status == Call.Status.ENDED and row.end_reason == Call.EndReason.CONNECTION_LOST
    assert abs((row.ended_at - dropped).total_seconds()) < 0.3  # the drop, not the timer
    assert row.duration_seconds == 1
    callee_row = await database_sync_to_async(CallParticipant.objects.get)(call=row, user=call.callees[0].user)
    assert callee_row.state == CallParticipant.State.LEFT
    assert callee_row.leave_reason == Call.EndReason.CONNECTION_LOST


async def test_a_second_device_of_the_same_user_keeps_the_participant_connected(sockets, settings):
    settings.CALL_RECONNECT_GRACE = 0.3
    call, (caller, phone) = await answered_call(sockets)
    laptop = await sockets.signaling(call.id, call.callees[0])
    await receive_type(caller, "join")
    await phone.disconnect()
    assert await caller.receive_nothing(timeout=1.0)  # no reconnecting, no leave: the laptop is here
    row = await database_sync_to_async(call_row)(call.id)
    assert row.status == Call.Status.ACTIVE
    await caller.send_to(text_data=frame(type="ice_candidate", candidate=CANDIDATE))
    await receive_type(laptop, "ice_candidate")


# --- rights follow state ------------------------------------------------------------------------------


async def test_a_callee_who_declines_has_the_open_socket_closed_and_cannot_reconnect(sockets):
    call = await database_sync_to_async(make_call_with)(callees=2)
    caller = await sockets.signaling(call.id, call.caller)
    decliner = await sockets.signaling(call.id, call.callees[0])
    await receive_type(caller, "join")
    started = time.monotonic()
    await arest(call.callees[0], f"/v1/calls/{call.id}/decline")
    error = await expect_refusal(decliner, 4403)
    assert time.monotonic() - started < 1.0 and "declined" in error["message"]
    assert (await receive_type(caller, "leave"))["sender_id"] == call.callees[0].id

    refused = await sockets.connect_signaling(call.id, call.callees[0])
    await expect_refusal(refused, 4403)


async def test_a_participant_who_left_over_rest_is_closed_and_refused(sockets):
    call, (caller, first, _second) = await answered_call(sockets, callees=2)
    await arest(call.callees[0], f"/v1/calls/{call.id}/leave")
    error = await expect_refusal(first, 4403)
    assert "left" in error["message"]
    assert (await receive_type(caller, "leave"))["sender_id"] == call.callees[0].id
    await expect_refusal(await sockets.connect_signaling(call.id, call.callees[0]), 4403)


async def test_a_callee_who_never_answers_misses_at_the_deadline_and_the_call_ends_when_the_caller_leaves(
    sockets, settings
):
    settings.CALL_RING_TIMEOUT = 1
    call = await database_sync_to_async(make_call_with)(callees=2)
    bob, carol = call.callees
    # Events leave after the answer (signaling.call_events sends them off the request thread), so
    # carol listens before bob joins and takes his call_accepted first: the order is then fixed.
    carol_events = await sockets.events(carol)
    await arest(bob, f"/v1/calls/{call.id}/join")
    assert (await receive_type(carol_events, "call_accepted"))["call_id"] == call.id
    carol_socket = await sockets.signaling(call.id, carol)
    await asyncio.sleep(1.1)

    assert await database_sync_to_async(services.call_expire_due)() == 1
    missed = await receive_type(carol_events, "call_missed")
    assert missed["call_id"] == call.id
    await expect_refusal(carol_socket, 4403)
    row = await database_sync_to_async(call_row)(call.id)
    assert row.status == Call.Status.ACTIVE
    state = await database_sync_to_async(CallParticipant.objects.get)(call=row, user=carol.user)
    assert state.state == CallParticipant.State.MISSED

    await arest(call.caller, f"/v1/calls/{call.id}/leave")
    row = await database_sync_to_async(call_row)(call.id)
    assert row.status == Call.Status.ENDED and row.end_reason == Call.EndReason.HANGUP


# --- sessions end on open sockets ------------------------------------------------------------------


async def test_logout_closes_the_sockets_opened_with_that_token(sockets):
    call = await database_sync_to_async(make_call_with)(callees=1)
    pair = tokens.issue_token_pair(call.caller.user)
    me = Person(call.caller.user, pair["access_token"])
    other_session = await sockets.events(call.caller)  # another token of the same user
    signaling = await sockets.signaling(call.id, me)
    events = await sockets.events(me)
    started = time.monotonic()
    await arest(me, "/v1/auth/logout", {"refresh_token": pair["refresh_token"]})
    await expect_refusal(signaling, 4401)
    await expect_refusal(events, 4401)
    assert time.monotonic() - started < 1.5
    assert await other_session.receive_nothing(timeout=0.3)  # that session was not logged out


async def test_an_open_socket_closes_at_the_token_expiry(sockets, settings):
    settings.JWT_ACCESS_TTL = 1
    call = await database_sync_to_async(make_call_with)(callees=1)
    short = Person(call.caller.user, tokens.issue_token_pair(call.caller.user)["access_token"])
    socket = await sockets.signaling(call.id, short)
    expires = tokens.decode_access_token(short.token).expires_at.timestamp()
    error = await expect_refusal(socket, 4401)
    assert "expired" in error["message"]
    assert time.time() - expires < 1.0


async def test_disabling_an_account_closes_its_sockets(sockets):
    call = await database_sync_to_async(make_call_with)(callees=1)
    signaling = await sockets.signaling(call.id, call.callees[0])
    events = await sockets.events(call.callees[0])
    user = call.callees[0].user
    user.is_active = False
    await database_sync_to_async(user.save)()
    await expect_refusal(signaling, 4403)
    await expect_refusal(events, 4403)
    refused = sockets.communicator("/v1/ws/events", token=call.callees[0].token)
    await refused.connect(timeout=5)
    await expect_refusal(refused, 4401)


# --- crash-safe sockets ----------------------------------------------------------------------------


async def test_a_lone_surrogate_is_an_invalid_message_and_the_socket_stays(sockets):
    _call, (caller, callee) = await answered_call(sockets)
    await caller.send_to(text_data='{"type": "offer", "sdp": "\\ud800"}')
    error = await receive_type(caller, "error")
    assert error["code"] == "invalid_message"
    await caller.send_to(text_data=frame(type="ice_candidate", candidate=CANDIDATE))
    await receive_type(callee, "ice_candidate")


async def test_a_failing_handler_closes_with_1011_and_releases_everything(sockets, monkeypatch):
    call, (caller, _callee) = await answered_call(sockets)
    in_use, failures = signaling_slots.in_use, metrics.handler_failures.labels(socket="signaling")._value.get()

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("signaling.protocol.relayed", broken)
    await caller.send_to(text_data=frame(type="ice_candidate", candidate=CANDIDATE))
    error = await receive_type(caller, "error")
    assert error["close_code"] == 1011
    closing = await caller.receive_output(timeout=5)
    assert closing["type"] == "websocket.close" and closing["code"] == 1011
    await eventually(lambda: signaling_slots.in_use == in_use - 1)
    assert registry.per_user[("signaling", call.caller.id)] == 0
    assert metrics.handler_failures.labels(socket="signaling")._value.get() == failures + 1


async def test_sockets_past_the_per_user_cap_are_refused_with_4429(sockets, settings):
    settings.WS_MAX_EVENTS_PER_USER = 2
    person = await database_sync_to_async(make_person)()
    first = await sockets.events(person)
    await sockets.events(person)
    third = sockets.communicator("/v1/ws/events", token=person.token)
    await third.connect(timeout=5)
    error = await expect_refusal(third, 4429)
    assert "2 events sockets" in error["message"]
    await first.disconnect()
    await asyncio.sleep(0.05)
    fourth = await sockets.events(person)
    assert await fourth.receive_nothing(timeout=0.2)


# --- the timeline follows the wire -------------------------------------------------------------------


def timeline_of(call_id, user_id) -> list[str]:
    from calls.models import CallTimelineEvent

    return list(
        CallTimelineEvent.objects.filter(call_id=call_id, actor_id=user_id)
        .order_by("seq")
        .values_list("kind", flat=True)
    )


async def test_the_timeline_records_connected_reconnecting_and_resumed_as_they_happen(sockets, settings):
    settings.CALL_RECONNECT_GRACE = 10
    call, (caller, callee) = await answered_call(sockets)
    callee_id = call.callees[0].id
    await eventually_async(lambda: timeline_of(call.id, callee_id)[-1:] == ["connected"])
    laptop = await sockets.signaling(call.id, call.callees[0])  # a second device of someone here adds nothing
    await receive_type(caller, "join")
    await laptop.disconnect()
    await callee.disconnect()
    await receive_type(caller, "participant_reconnecting")
    await eventually_async(lambda: timeline_of(call.id, callee_id)[-1:] == ["reconnecting"])
    await sockets.signaling(call.id, call.callees[0])
    await receive_type(caller, "participant_resumed")
    await eventually_async(lambda: timeline_of(call.id, callee_id)[-1:] == ["resumed"])
    kinds = await database_sync_to_async(timeline_of)(call.id, callee_id)
    assert kinds[-3:] == ["connected", "reconnecting", "resumed"] and kinds.count("connected") == 1
    assert (await database_sync_to_async(timeline_of)(call.id, call.caller.id))[-1:] == ["connected"]


async def eventually_async(condition, timeout=5.0):
    """``condition`` (a sync function reading the database) holds within ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await database_sync_to_async(condition)():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
