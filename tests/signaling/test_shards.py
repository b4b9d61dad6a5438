"""The channel layer over two Redis servers (CHANNEL_LAYER_REDIS_URLS): calls whose groups land
on different shards relay across two service processes, and stopping one shard closes only the
sockets of the calls on it (4503) while the others keep relaying."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from signaling.groups import group_name
from signaling.layers import shard_index
from tests.signaling.conftest import (
    REDIS_HOST,
    REDIS_PORT,
    SIGNALING_PATH,
    delete_prefix,
    make_call_with,
    redis_reachable,
    unique_prefix,
)
from tests.support.servers import RedisServer, service_env, start_service

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

WAIT = 10


@pytest.fixture
def second_redis(tmp_path):
    if not redis_reachable():
        pytest.skip(f"needs Redis on {REDIS_HOST}:{REDIS_PORT}")
    server = RedisServer(log_path=tmp_path / "redis-shard-1.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def two_sharded_services(transactional_db, tmp_path, second_redis):
    prefix = unique_prefix()
    shards = f"redis://{REDIS_HOST}:{REDIS_PORT}/0,{second_redis.url}"
    started = []
    try:
        for name in ("a", "b"):
            env = service_env(
                prefix=prefix, spool_path=tmp_path / f"spool-{name}.sqlite3", CHANNEL_LAYER_REDIS_URLS=shards
            )
            started.append(start_service(env=env, log_path=tmp_path / f"service-{name}.log"))
        yield started
    finally:
        for process in started:
            process.stop()
        delete_prefix(prefix)


@pytest.fixture
def a_call_on_each_shard(transactional_db):
    """Calls are made until one's groups land on shard 0 and another's on shard 1 (bounded)."""
    found = {}
    for _ in range(64):
        call = make_call_with()
        found.setdefault(shard_index(group_name(call_id=call.id), 2), call)
        if len(found) == 2:
            return found[0], found[1]
    raise AssertionError("64 calls, all on one shard: the shard function does not spread calls")


async def open_signaling(service, call, person):
    ws = await connect(
        f"{service.ws_url}{SIGNALING_PATH}?call_id={call.id}",
        additional_headers={"Authorization": f"Bearer {person.token}"},
        proxy=None,
        open_timeout=WAIT,
    )
    assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] == "participants"
    return ws


async def next_of_type(ws, message_type: str) -> dict:
    message = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    assert message["type"] == message_type, message
    return message


async def relays_both_ways(caller_ws, callee_ws, tag: str) -> None:
    candidate = {"candidate": "candidate:1 1 udp 1 192.0.2.1 5000 typ host", "sdpMid": tag, "sdpMLineIndex": 0}
    await caller_ws.send(json.dumps({"type": "ice_candidate", "candidate": candidate}))
    assert (await next_of_type(callee_ws, "ice_candidate"))["candidate"]["sdpMid"] == tag
    await callee_ws.send(json.dumps({"type": "ice_candidate", "candidate": {**candidate, "sdpMid": f"{tag}-back"}}))
    assert (await next_of_type(caller_ws, "ice_candidate"))["candidate"]["sdpMid"] == f"{tag}-back"


async def test_calls_on_two_shards_relay_and_a_stopped_shard_closes_only_its_calls(
    two_sharded_services, a_call_on_each_shard, second_redis
):
    a, b = two_sharded_services
    sockets = {}
    try:
        for shard, call in enumerate(a_call_on_each_shard):
            caller_ws = await open_signaling(a, call, call.caller)  # the caller on one process,
            callee_ws = await open_signaling(b, call, call.callees[0])  # the callee on the other
            await next_of_type(caller_ws, "join")
            sockets[shard] = (caller_ws, callee_ws)
            await relays_both_ways(caller_ws, callee_ws, f"shard-{shard}")

        second_redis.stop()  # shard 1: its calls' sockets are told and closed on both processes
        for ws in sockets[1]:
            error = await next_of_type(ws, "error")
            assert error["close_code"] == 4503 and error["code"] == "unavailable"
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), WAIT)
            assert ws.close_code == 4503

        await relays_both_ways(*sockets[0], "shard-0-after")  # the other shard's call goes on
        for process in (a, b):
            with process.operator_client() as client:
                metrics = client.get("/metrics").text
            assert 'secureconnect_channel_layer_reconnects_total{shard="1"} 1.0' in metrics
            assert 'secureconnect_channel_layer_cut_channels_total{shard="1"} 1.0' in metrics
            assert 'secureconnect_channel_layer_reconnects_total{shard="0"}' not in metrics
    finally:
        for pair in sockets.values():
            for ws in pair:
                await ws.close()
