"""Presence across real server processes on PostgreSQL and Redis: zombie calls (clients that
close, clients killed with kill -9, a server killed with kill -9), resume on another instance,
sessions that end on every instance, crash inputs from thousands of sockets, old clients that
only answer protocol pings, and clients that stop answering them."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest
from django.utils import timezone
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from accounts.tokens import issue_token_pair
from bench.processes import ROOT, ServiceProcess, wait_until
from calls.models import Call, CallParticipant
from tests.signaling.conftest import (
    EVENTS_PATH,
    REDIS_HOST,
    REDIS_PORT,
    SIGNALING_PATH,
    delete_prefix,
    make_call_with,
    unique_prefix,
)
from tests.support.servers import service_env, start_service

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

WAIT = 10
GRACE = 2.0
PING_INTERVAL, PING_TIMEOUT = 1.0, 2.0
PRESENCE_TTL = 1.5
EXPIRY_INTERVAL = 0.5


@pytest.fixture
def start_services(transactional_db, tmp_path):
    """Start service processes sharing the test database and one Redis prefix; stopped by PID."""
    prefix = unique_prefix()
    started: list[ServiceProcess] = []

    def start(name: str, **extra) -> ServiceProcess:
        env = service_env(
            prefix=prefix,
            spool_path=tmp_path / f"spool-{name}.sqlite3",
            redis_url=f"redis://{REDIS_HOST}:{REDIS_PORT}/0",
            **{
                "CALL_RECONNECT_GRACE": GRACE,
                "PRESENCE_TTL": PRESENCE_TTL,
                "CALL_EXPIRY_INTERVAL": EXPIRY_INTERVAL,
                "WS_PING_INTERVAL": PING_INTERVAL,
                "WS_PING_TIMEOUT": PING_TIMEOUT,
                **extra,
            },
        )
        process = start_service(env=env, log_path=tmp_path / f"service-{name}.log")
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.kill()
        delete_prefix(prefix)


async def open_socket(service: ServiceProcess, path: str, token: str):
    return await connect(
        service.ws_url + path, additional_headers={"Authorization": f"Bearer {token}"}, proxy=None, open_timeout=WAIT
    )


async def signaling(service, call, person):
    ws = await open_socket(service, f"{SIGNALING_PATH}?call_id={call.id}", person.token)
    assert (await next_of_type(ws, "participants"))["type"] == "participants"
    return ws


async def next_message(ws, timeout=WAIT) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def next_of_type(ws, message_type: str, timeout=WAIT) -> dict:
    message = await next_message(ws, timeout)
    assert message["type"] == message_type, message
    return message


async def expect_closed(ws, code: int, timeout=WAIT) -> dict | None:
    """The error message (if any) before the close, and the close code."""
    error = None
    with pytest.raises(ConnectionClosed):
        while True:
            message = await next_message(ws, timeout)
            if message["type"] == "error" and message.get("close_code"):
                error = message
    assert ws.close_code == code, (ws.close_code, error)
    return error


def rest(service, person, path, data=None) -> httpx.Response:
    return httpx.post(
        f"{service.url}{path}",
        json=data or {},
        headers={"Authorization": f"Bearer {person.token}"},
        timeout=WAIT,
        trust_env=False,
    )


def answered(call) -> None:
    from calls import services

    services.call_join(call_id=call.id, user_id=call.callees[0].id)


async def wait_for_call(call_id, predicate, timeout) -> Call:
    @sync
    def read():
        row = Call.objects.get(pk=call_id)
        return row if predicate(row) else None

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = await read()
        if row:
            return row
        await asyncio.sleep(0.1)
    raise AssertionError(
        f"call {call_id} not as expected within {timeout}s: {await sync(Call.objects.get)(pk=call_id)}"
    )


def sync(fn):
    from channels.db import database_sync_to_async

    return database_sync_to_async(fn)


def ended_connection_lost(row: Call) -> bool:
    return row.status == Call.Status.ENDED and row.end_reason == Call.EndReason.CONNECTION_LOST


async def initiate_again_rings_the_callee(service, call):
    """After a zombie ends, a new call in that conversation answers 201 and rings the callee."""
    events = await open_socket(service, EVENTS_PATH, call.callees[0].token)
    try:
        response = await asyncio.to_thread(
            rest,
            service,
            call.caller,
            "/v1/calls/initiate",
            {
                "conversation_id": str(call.call.conversation_id),
                "callee_ids": [call.callees[0].id],
                "call_type": "video",
            },
        )
        assert response.status_code == 201, response.text
        incoming = await next_message(events)
        # The zombie's call_ended can reach this socket after its row was read as ended (events
        # leave after the commit, off the writing thread); anything else first is a failure.
        if incoming["type"] == "call_ended" and incoming["call_id"] == call.id:
            incoming = await next_message(events)
        assert incoming["type"] == "incoming_call", incoming
        assert incoming["call_id"] == response.json()["data"]["call_id"]
    finally:
        await events.close()


# --- zombies ----------------------------------------------------------------------------------------


async def test_both_clients_closing_without_hanging_up_end_the_call_connection_lost(start_services):
    a = start_services("a")
    b = start_services("b")
    call = await sync(make_call_with)()
    await sync(answered)(call)
    caller = await signaling(a, call, call.caller)
    callee = await signaling(b, call, call.callees[0])
    await next_of_type(caller, "join")
    await asyncio.sleep(1.2)
    closed_at = timezone.now()
    await caller.close()
    await callee.close()

    row = await wait_for_call(call.id, ended_connection_lost, timeout=GRACE + EXPIRY_INTERVAL + 5)
    assert abs((row.ended_at - closed_at).total_seconds()) < 0.5  # the close, not the timer
    assert row.duration_seconds >= 1
    await initiate_again_rings_the_callee(a, call)


CLIENT = """
import asyncio, sys
from websockets.asyncio.client import connect

async def main(url, token):
    ws = await connect(url, additional_headers={"Authorization": "Bearer " + token}, proxy=None)
    await ws.recv()
    print("connected", flush=True)
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def client_process(service, call, person) -> subprocess.Popen:
    """A client in a process of its own (killable with kill -9, stoppable with SIGSTOP)."""
    url = f"{service.ws_url}{SIGNALING_PATH}?call_id={call.id}"
    process = subprocess.Popen(
        [sys.executable, "-c", CLIENT, url, person.token], stdout=subprocess.PIPE, cwd=ROOT, text=True
    )
    assert process.stdout.readline().strip() == "connected"
    return process


async def test_clients_killed_with_kill_9_end_the_call_connection_lost(start_services):
    a = start_services("a")
    call = await sync(make_call_with)()
    await sync(answered)(call)
    clients = [client_process(a, call, call.caller), client_process(a, call, call.callees[0])]
    try:
        await asyncio.sleep(1.2)
        killed_at = timezone.now()
        for client in clients:
            client.kill()
        row = await wait_for_call(call.id, ended_connection_lost, timeout=GRACE + EXPIRY_INTERVAL + 5)
        assert abs((row.ended_at - killed_at).total_seconds()) < 0.5
    finally:
        for client in clients:
            client.kill()
            client.wait(5)
    await initiate_again_rings_the_callee(a, call)


async def test_a_server_killed_with_kill_9_has_its_calls_ended_by_another_instance(start_services):
    a = start_services("a")
    b = start_services("b")
    call = await sync(make_call_with)()
    await sync(answered)(call)
    caller = await signaling(a, call, call.caller)
    await signaling(a, call, call.callees[0])
    await next_of_type(caller, "join")
    await asyncio.sleep(1.2)
    killed_at = timezone.now()
    a.kill()

    bound = PRESENCE_TTL + GRACE + EXPIRY_INTERVAL
    row = await wait_for_call(call.id, ended_connection_lost, timeout=bound + 5)
    # last seen alive: the instance's last renewal, at most PRESENCE_TTL / 3 before the kill
    assert -(PRESENCE_TTL / 3 + 0.3) < (row.ended_at - killed_at).total_seconds() < 0.3
    settled = (timezone.now() - killed_at).total_seconds()
    assert settled < bound + 3
    await initiate_again_rings_the_callee(b, call)


# --- resume across instances -------------------------------------------------------------------------


async def test_a_participant_resumes_on_another_instance_with_every_message_of_a_5_s_gap(start_services):
    a = start_services("a", CALL_RECONNECT_GRACE=15)
    b = start_services("b", CALL_RECONNECT_GRACE=15)
    call = await sync(make_call_with)()
    await sync(answered)(call)
    caller = await signaling(a, call, call.caller)
    callee = await signaling(a, call, call.callees[0])
    await next_of_type(caller, "join")
    await callee.close()
    assert (await next_of_type(caller, "participant_reconnecting"))["sender_id"] == call.callees[0].id

    started = time.monotonic()
    for n in range(50):
        target = {"target_id": call.callees[0].id} if n % 2 else {}
        await caller.send(json.dumps({"type": "offer", "sdp": f"sdp-{n}", **target}))
        await asyncio.sleep(0.08)
    await asyncio.sleep(max(0.0, 5 - (time.monotonic() - started)))

    again = await signaling(b, call, call.callees[0])
    got = [(await next_of_type(again, "offer"))["sdp"] for _ in range(50)]
    assert got == [f"sdp-{n}" for n in range(50)]
    with pytest.raises(TimeoutError):
        await next_message(again, timeout=1.0)  # nothing twice, no resume_incomplete
    assert (await next_of_type(caller, "participant_resumed"))["sender_id"] == call.callees[0].id
    with pytest.raises(TimeoutError):
        await next_message(caller, timeout=0.5)  # no leave, no join
    row = await sync(Call.objects.get)(pk=call.id)
    assert row.status == Call.Status.ACTIVE


# --- sessions end everywhere ---------------------------------------------------------------------------


async def test_logout_and_disabling_close_open_sockets_on_both_instances(start_services, tmp_path):
    a = start_services("a")
    b = start_services("b")
    call = await sync(make_call_with)()
    pair = issue_token_pair(call.caller.user)
    caller = type(call.caller)(call.caller.user, pair["access_token"])
    sockets = [
        await signaling(a, call, caller),
        await open_socket(b, EVENTS_PATH, caller.token),
    ]
    started = time.monotonic()
    response = await asyncio.to_thread(rest, a, caller, "/v1/auth/logout", {"refresh_token": pair["refresh_token"]})
    assert response.status_code in (200, 204), response.text
    for ws in sockets:
        await expect_closed(ws, 4401, timeout=3)
    assert time.monotonic() - started < 2.0

    callee = call.callees[0]
    sockets = [await signaling(b, call, callee), await open_socket(a, EVENTS_PATH, callee.token)]
    started = time.monotonic()
    disable = f"from accounts.models import User; u = User.objects.get(pk={callee.id!r}); u.is_active = False; u.save()"
    env = {**a.env, "DJANGO_SETTINGS_MODULE": "secureconnect.settings"}
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "manage.py", "shell", "-c", disable],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
        timeout=60,
    )
    for ws in sockets:
        await expect_closed(ws, 4403, timeout=3)


# --- crash inputs ---------------------------------------------------------------------------------------


def open_sockets_gauge(service) -> dict[str, float]:
    with service.operator_client() as client:
        response = client.get("/metrics")
    assert response.status_code == 200, response.status_code
    text = response.text
    return {m[0]: float(m[1]) for m in re.findall(r'secureconnect_ws_open_sockets\{socket="(\w+)"\} ([0-9.e+]+)', text)}


async def test_crash_inputs_from_2000_sockets_leak_nothing(start_services):
    a = start_services(
        "a",
        WS_MAX_SIGNALING_PER_USER=5000,
        WS_RATE_LIMIT=5,
        WS_RATE_BURST=3,
        CALL_RING_TIMEOUT=3600,
        CALL_RECONNECT_GRACE=0.5,  # each attacker's drop is held briefly: fewer holders at once
    )
    call = await sync(make_call_with)(callees=1)
    before = open_sockets_gauge(a)
    surrogate = '{"type": "offer", "sdp": "\\ud800"}'

    async def attacker(n: int):
        ws = await open_socket(a, f"{SIGNALING_PATH}?call_id={call.id}", call.callees[0].token)
        try:
            if n % 2:
                await ws.send(surrogate)  # a lone surrogate: an error, the socket stays
                while (await next_message(ws))["type"] != "error":
                    pass
            else:
                for _ in range(10):  # over the rate: closed with 4490 (a legal code)
                    await ws.send('{"type": "ping"}')
                await expect_closed(ws, 4490)
        finally:
            await ws.close()

    # 10 at a time: each handshake must complete within daphne's websocket_connect_timeout (5 s,
    # then an HTTP 403) on a loaded 2-core machine.
    for start in range(0, 2000, 10):
        await asyncio.gather(*(attacker(n) for n in range(start, start + 10)))

    legit = await signaling(a, call, call.caller)
    await legit.send(json.dumps({"type": "ping"}))
    assert (await next_of_type(legit, "pong"))["type"] == "pong"
    await legit.close()
    after = wait_until(
        lambda: (g := open_sockets_gauge(a)) and g.get("signaling", 0) == before.get("signaling", 0) and g,
        timeout=15,
        message="signaling gauge back to its start",
    )
    assert after.get("events", 0) == before.get("events", 0)
    assert "Traceback" not in a.log_text()


# --- keepalive --------------------------------------------------------------------------------------------


@pytest.mark.timeout(420)
async def test_an_old_client_silent_for_5_minutes_stays_connected(start_services):
    """It sends nothing at all and only answers protocol pings (websockets does that by itself)."""
    a = start_services("a")
    call = await sync(make_call_with)()
    await sync(answered)(call)
    old = await connect(
        f"{a.ws_url}{SIGNALING_PATH}?call_id={call.id}",
        additional_headers={"Authorization": f"Bearer {call.callees[0].token}"},
        proxy=None,
        ping_interval=None,  # it never pings the server itself
    )
    await next_of_type(old, "participants")
    peer = await signaling(a, call, call.caller)
    assert (await next_of_type(old, "join"))["sender_id"] == call.caller.id
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            await peer.send(json.dumps({"type": "ping"}))  # the peer stays busy; the old client says nothing
            await next_of_type(peer, "pong")
            await asyncio.sleep(10)
        await peer.send(json.dumps({"type": "offer", "sdp": "still here?"}))
        assert (await next_of_type(old, "offer"))["sdp"] == "still here?"
        row = await sync(Call.objects.get)(pk=call.id)
        assert row.status == Call.Status.ACTIVE
    finally:
        await old.close()
        await peer.close()


async def test_a_client_that_stops_answering_pings_is_dropped_within_interval_plus_timeout(start_services):
    a = start_services("a")
    call = await sync(make_call_with)()
    await sync(answered)(call)
    peer = await signaling(a, call, call.caller)
    frozen = client_process(a, call, call.callees[0])
    try:
        await next_of_type(peer, "join")
        frozen.send_signal(signal.SIGSTOP)  # the process, and its pongs, stop; TCP stays open
        stopped_at = time.monotonic()
        stopped_wall = timezone.now()
        reconnecting = await next_of_type(peer, "participant_reconnecting", timeout=PING_INTERVAL + PING_TIMEOUT + 3)
        assert reconnecting["sender_id"] == call.callees[0].id
        assert time.monotonic() - stopped_at <= PING_INTERVAL + PING_TIMEOUT + 1.0
        left = await next_of_type(peer, "leave", timeout=GRACE + EXPIRY_INTERVAL + 3)
        assert left["reason"] == "connection_lost"
        row = await wait_for_call(call.id, ended_connection_lost, timeout=5)
        # dated when its pongs stopped (detection minus WS_PING_TIMEOUT), not when a timer fired
        assert (row.ended_at - stopped_wall).total_seconds() < PING_INTERVAL + 0.5
        lost = await sync(CallParticipant.objects.get)(call_id=call.id, user_id=call.callees[0].id)
        assert lost.leave_reason == Call.EndReason.CONNECTION_LOST
    finally:
        frozen.send_signal(signal.SIGCONT)
        frozen.kill()
        frozen.wait(5)
        await peer.close()


async def test_one_user_past_the_per_user_cap_is_refused_with_4429_by_the_server(start_services):
    a = start_services("a", WS_MAX_EVENTS_PER_USER=3)
    call = await sync(make_call_with)()
    held = [await open_socket(a, EVENTS_PATH, call.caller.token) for _ in range(3)]
    try:
        refused = await open_socket(a, EVENTS_PATH, call.caller.token)
        error = await expect_closed(refused, 4429)
        assert "3 events sockets" in error["message"]
        other_user = await open_socket(a, EVENTS_PATH, call.callees[0].token)  # the cap is per user
        await other_user.send(json.dumps({"type": "ping"}))
        assert (await next_of_type(other_user, "pong"))["type"] == "pong"
        await other_user.close()
        await held.pop().close()
        again = await wait_for_open(a, call.caller.token)
        await again.close()
    finally:
        for ws in held:
            await ws.close()


async def wait_for_open(service, token):
    """A socket accepted past the refusals that came before (the cap frees as a socket closes)."""
    deadline = time.monotonic() + WAIT
    while True:
        ws = await open_socket(service, EVENTS_PATH, token)
        await ws.send(json.dumps({"type": "ping"}))
        message = await next_message(ws)
        if message["type"] == "pong":
            return ws
        assert time.monotonic() < deadline, message
        await ws.close()
        await asyncio.sleep(0.1)
