"""Two real daphne processes on one Redis: a caller on one and a callee on the other hear each
other (offer, answer, candidates) and both hear the call end through REST."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from django.db import connection
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.factories import make_conversation
from tests.signaling.conftest import (
    EVENTS_PATH,
    REDIS_HOST,
    REDIS_PORT,
    SIGNALING_PATH,
    delete_prefix,
    make_call_with,
    make_person,
    redis_reachable,
    unique_prefix,
)
from tests.support.servers import service_env, start_service

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

STARTUP_TIMEOUT = 40
WAIT = 10  # seconds any one message may take


@pytest.fixture
def two_daphnes(transactional_db, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    if not redis_reachable():
        pytest.skip(f"needs Redis on {REDIS_HOST}:{REDIS_PORT}")
    prefix = unique_prefix()
    processes = []
    try:
        for name in ("a", "b"):
            env = service_env(
                prefix=prefix,
                spool_path=tmp_path / f"spool-{name}.sqlite3",
                redis_url=f"redis://{REDIS_HOST}:{REDIS_PORT}/0",
                DB_STARTUP_MODE="background",
                LOG_LEVEL="DEBUG",  # everything any logger says, to show no token is in it
            )
            processes.append(start_service(env=env, log_path=tmp_path / f"daphne-{name}.log", wait=STARTUP_TIMEOUT))
        yield processes
    finally:
        for process in processes:
            process.stop()
        delete_prefix(prefix)


@pytest.fixture
def call_and_stranger(transactional_db):
    return make_call_with(), make_person()


async def next_message(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT))


async def next_of_type(ws, message_type: str) -> dict:
    message = await next_message(ws)
    assert message["type"] == message_type, message
    return message


async def test_caller_and_callee_on_different_processes_hear_each_other(two_daphnes, call_and_stranger):
    a, b = two_daphnes
    call, stranger = call_and_stranger
    path = f"{SIGNALING_PATH}?call_id={call.id}"
    caller_ws = await connect(
        a.ws_url + path,
        additional_headers={"Authorization": f"Bearer {call.caller.token}"},
        proxy=None,
        open_timeout=WAIT,
    )
    # The caller has its ``participants`` (so its ``join`` is out) before the callee connects: a
    # socket that connects while another is still opening may learn of it by both ``participants``
    # and ``join`` (signaling.consumers, ``opened``), and this test expects exactly one of them.
    assert (await next_of_type(caller_ws, "participants"))["participants"] == []
    # The callee is a browser: token as the bearer subprotocol pair, and an Origin.
    callee_ws = await connect(
        b.ws_url + path,
        subprotocols=["bearer", call.callees[0].token],
        origin="http://localhost:5173",
        proxy=None,
        open_timeout=WAIT,
    )
    try:
        assert callee_ws.subprotocol == "bearer"
        assert (await next_of_type(callee_ws, "participants"))["participants"] == [call.caller.id]
        assert (await next_of_type(caller_ws, "join"))["sender_id"] == call.callees[0].id

        await caller_ws.send(json.dumps({"type": "offer", "sdp": "v=0 offer from a", "sender_id": "forged"}))
        offer = await next_of_type(callee_ws, "offer")
        assert offer["sdp"] == "v=0 offer from a" and offer["sender_id"] == call.caller.id

        await callee_ws.send(json.dumps({"type": "answer", "sdp": "v=0 answer from b", "target_id": call.caller.id}))
        answer = await next_of_type(caller_ws, "answer")
        assert answer["sdp"] == "v=0 answer from b" and answer["sender_id"] == call.callees[0].id

        for n in range(5):
            candidate = {"candidate": f"candidate:{n} 1 udp 1 192.0.2.1 {5000 + n} typ host", "sdpMLineIndex": 0}
            await caller_ws.send(json.dumps({"type": "ice_candidate", "candidate": candidate}))
            await callee_ws.send(json.dumps({"type": "ice_candidate", "candidate": candidate}))
        for ws in (caller_ws, callee_ws):
            got = [(await next_of_type(ws, "ice_candidate"))["candidate"]["candidate"] for _ in range(5)]
            assert got == [f"candidate:{n} 1 udp 1 192.0.2.1 {5000 + n} typ host" for n in range(5)]

        # A refusal through daphne: the close code arrives (daphne 4.2 drops the reason text,
        # which is why the error message before it carries the reason).
        stranger_ws = await connect(
            b.ws_url + path, additional_headers={"Authorization": f"Bearer {stranger.token}"}, proxy=None
        )
        error = await next_of_type(stranger_ws, "error")
        assert error["close_code"] == 4404
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(stranger_ws.recv(), WAIT)
        assert stranger_ws.close_code == 4404

        # The call ends through REST on process a; both processes' sockets hear it and close.
        async with httpx.AsyncClient(base_url=a.url, trust_env=False, timeout=WAIT) as client:
            response = await client.post(
                f"/v1/calls/{call.id}/end", json={}, headers={"Authorization": f"Bearer {call.callees[0].token}"}
            )
        assert response.status_code == 200, response.text
        for ws in (caller_ws, callee_ws):
            ended = await next_of_type(ws, "call_ended")
            assert ended["call_id"] == call.id and ended["reason"] in ("cancelled", "declined")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), WAIT)
            assert ws.close_code == 1000
    finally:
        await caller_ws.close()
        await callee_ws.close()
    logs = a.log_path.read_text() + b.log_path.read_text()
    # The access log is there (uvicorn's line; daphne's says "WSCONNECT /v1/calls/ws/signaling")...
    assert '"WebSocket /v1/calls/ws/signaling?call_id=' in logs
    for person in (call.caller, call.callees[0], stranger):
        assert person.token.split(".")[2] not in logs  # ...and no token (not even its signature)


@pytest.fixture
def caller_callee_conversation(transactional_db):
    caller, callee = make_person(), make_person()
    return caller, callee, make_conversation(members=[caller.user, callee.user])


async def test_events_reach_a_users_devices_on_every_process(two_daphnes, caller_callee_conversation):
    a, b = two_daphnes
    caller, callee, conversation = caller_callee_conversation

    def events_socket(process, person):
        headers = {"Authorization": f"Bearer {person.token}"}
        return connect(process.ws_url + EVENTS_PATH, additional_headers=headers, proxy=None, open_timeout=WAIT)

    phone, laptop, caller_events = await events_socket(a, callee), await events_socket(b, callee), None
    try:
        caller_events = await events_socket(b, caller)
        async with httpx.AsyncClient(trust_env=False, timeout=WAIT) as client:
            started = await client.post(
                f"{a.url}/v1/calls/initiate",
                json={"call_type": "audio", "conversation_id": str(conversation.id), "callee_ids": [callee.id]},
                headers={"Authorization": f"Bearer {caller.token}"},
            )
            assert started.status_code == 201, started.text
            call_id = started.json()["data"]["call_id"]
            for device in (phone, laptop):
                incoming = await next_of_type(device, "incoming_call")
                assert incoming["call_id"] == call_id and incoming["caller_id"] == caller.id

            answered = await client.post(
                f"{b.url}/v1/calls/{call_id}/join", json={}, headers={"Authorization": f"Bearer {callee.token}"}
            )
            assert answered.status_code == 200, answered.text
            for device in (phone, laptop, caller_events):  # the laptop stops ringing; the caller learns of it
                accepted = await next_of_type(device, "call_accepted")
                assert accepted["call_id"] == call_id and accepted["actor_id"] == callee.id

            ended = await client.post(
                f"{a.url}/v1/calls/{call_id}/end", json={}, headers={"Authorization": f"Bearer {caller.token}"}
            )
            assert ended.status_code == 200, ended.text
            for device in (phone, laptop, caller_events):
                assert (await next_of_type(device, "call_ended"))["reason"] == "hangup"
    finally:
        for ws in (phone, laptop, caller_events):
            if ws is not None:
                await ws.close()
