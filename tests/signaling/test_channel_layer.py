"""The channel layer on a real Redis: relaying through it, drops counted instead of lost
silently, 100 concurrent calls losing nothing, and an unreachable Redis refusing sockets
clearly while REST goes on."""

import asyncio
import threading
import time

import pytest
from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer
from django.test import Client
from prometheus_client import REGISTRY
from redis.asyncio.client import Pipeline as RedisPipeline

from bench.tcp_proxy import TcpProxy
from signaling.call_events import LayerDispatcher
from signaling.layers import (
    LAYER_ERRORS,
    CountingBoundedQueue,
    CountingInMemoryChannelLayer,
    CountingRedisChannelLayer,
    PubSubChannelLayer,
    SubscriptionLost,
    shard_index,
)
from tests.signaling.conftest import (
    REDIS_PORT,
    delete_prefix,
    expect_refusal,
    frame,
    make_call_with,
    receive_type,
    redis_layer_settings,
    unique_prefix,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

CANDIDATE = {"candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host", "sdpMid": "0", "sdpMLineIndex": 0}


def dropped(where: str) -> float:
    return REGISTRY.get_sample_value("secureconnect_channel_layer_dropped_messages_total", {"where": where}) or 0.0


def redis_config(prefix: str, **overrides) -> dict:
    return {**redis_layer_settings(prefix=prefix, backend="core")["default"]["CONFIG"], **overrides}


async def test_offer_answer_and_candidates_cross_the_redis_layer(sockets, two_party, redis_layer):
    caller = await sockets.signaling(two_party.id, two_party.caller)
    callee = await sockets.signaling(two_party.id, two_party.callees[0])
    await receive_type(caller, "join")
    await caller.send_to(text_data=frame(type="offer", sdp="v=0 offer"))
    assert (await receive_type(callee, "offer"))["sdp"] == "v=0 offer"
    await callee.send_to(text_data=frame(type="answer", sdp="v=0 answer", target_id=two_party.caller.id))
    assert (await receive_type(caller, "answer"))["sender_id"] == two_party.callees[0].id
    await callee.send_to(text_data=frame(type="ice_candidate", candidate=CANDIDATE))
    assert (await receive_type(caller, "ice_candidate"))["candidate"] == CANDIDATE


# --- drops are counted ----------------------------------------------------------------------------------


async def test_a_group_send_drop_is_counted_in_metrics(redis_layer):
    layer = CountingRedisChannelLayer(**redis_config(redis_layer, capacity=2))
    channel = await layer.new_channel()
    await layer.group_add("call.drop-test", channel)
    before = dropped("group_send")
    for n in range(3):  # nobody reads: the third finds the queue full
        await layer.group_send("call.drop-test", {"type": "signal.relay", "n": n})
    assert dropped("group_send") == before + 1
    await layer.close_pools()
    metrics_text = (await database_sync_to_async(Client().get)("/metrics")).content.decode()
    assert 'secureconnect_channel_layer_dropped_messages_total{where="group_send"}' in metrics_text


async def test_a_send_drop_is_counted(redis_layer):
    layer = CountingRedisChannelLayer(**redis_config(redis_layer, capacity=1))
    before = dropped("send")
    await layer.send("signaling.test", {"type": "x"})
    with pytest.raises(ChannelFull):
        await layer.send("signaling.test", {"type": "x"})
    assert dropped("send") == before + 1
    await layer.close_pools()


async def test_a_socket_buffer_overflow_is_counted():
    queue = CountingBoundedQueue(2)
    before = dropped("receive_buffer")
    for n in range(3):
        queue.put_nowait(n)
    assert dropped("receive_buffer") == before + 1
    assert [queue.get_nowait(), queue.get_nowait()] == [1, 2]  # the oldest went


async def test_an_in_memory_drop_is_counted():
    layer = CountingInMemoryChannelLayer(capacity=1)
    channel = await layer.new_channel()
    await layer.group_add("call.memory", channel)
    before = dropped("send")
    await layer.group_send("call.memory", {"type": "x"})
    await layer.group_send("call.memory", {"type": "x"})  # swallowed by the layer, counted by us
    assert dropped("send") == before + 1


def pubsub_layer(prefix: str, **overrides) -> PubSubChannelLayer:
    return PubSubChannelLayer(**{**redis_layer_settings(prefix=prefix)["default"]["CONFIG"], **overrides})


async def test_a_pubsub_socket_buffer_overflow_is_counted(redis_layer):
    layer = pubsub_layer(redis_layer, capacity=2)
    channel = await layer.new_channel()
    await layer.group_add("call.pubsub-drop", channel)
    before = dropped("receive_buffer")
    for n in range(3):  # nobody reads: the third pushes the oldest out
        await layer.group_send("call.pubsub-drop", {"type": "signal.relay", "n": n})
    await layer.group_send("call.pubsub-drop", {"type": "signal.relay", "n": 3})
    assert (await layer.receive(channel))["n"] in (1, 2)  # the oldest went
    assert dropped("receive_buffer") >= before + 1
    await layer.close()


async def test_a_pubsub_member_gets_what_is_published_after_it_joined_and_nothing_before(redis_layer):
    layer = pubsub_layer(redis_layer)
    first, second = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("call.pubsub-order", first)
    await layer.group_send("call.pubsub-order", {"type": "x", "n": "before"})
    await layer.group_add("call.pubsub-order", second)  # the subscription exists: a barrier, not a new SUBSCRIBE
    await layer.group_send("call.pubsub-order", {"type": "x", "n": "after"})
    assert [(await layer.receive(first))["n"] for _ in range(2)] == ["before", "after"]
    assert (await layer.receive(second))["n"] == "after"
    await layer.close()


async def test_a_pubsub_channel_whose_connection_is_cut_raises_instead_of_missing_messages(settings, redis_layer):
    proxy = TcpProxy(target_host="127.0.0.1", target_port=REDIS_PORT).start()
    try:
        layer = pubsub_layer(redis_layer, hosts=[f"redis://127.0.0.1:{proxy.port}/0"])
        channel = await layer.new_channel()
        await layer.group_add("call.pubsub-cut", channel)
        proxy.down()
        with pytest.raises(SubscriptionLost):
            await asyncio.wait_for(layer.receive(channel), timeout=10)
        assert REGISTRY.get_sample_value("secureconnect_channel_layer_cut_channels_total", {"shard": "0"}) >= 1
        await layer.close()
    finally:
        proxy.stop()


def pipeline_sizes(monkeypatch) -> list[int]:
    """How many commands each Redis pipeline sent from now on (one round trip each)."""
    sizes: list[int] = []
    original = RedisPipeline.execute

    async def counting_execute(self, *args, **kwargs):
        sizes.append(len(self.command_stack))
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(RedisPipeline, "execute", counting_execute)
    return sizes


async def test_pubsub_publishes_sent_at_once_leave_together_in_order(redis_layer, monkeypatch):
    layer = pubsub_layer(redis_layer, capacity=1000)
    channel = await layer.new_channel()
    await layer.group_add("call.pubsub-batch", channel)
    rounds = pipeline_sizes(monkeypatch)
    await asyncio.gather(*(layer.group_send("call.pubsub-batch", {"type": "x", "n": n}) for n in range(300)))
    assert [(await layer.receive(channel))["n"] for _ in range(300)] == list(range(300))
    assert sum(rounds) == 300 and len(rounds) < 30  # one round trip for many, none lost or reordered
    await layer.close()


async def test_pubsub_publishes_to_a_shard_that_went_away_each_fail(redis_layer):
    proxy = TcpProxy(target_host="127.0.0.1", target_port=REDIS_PORT).start()
    try:
        layer = pubsub_layer(redis_layer, hosts=[f"redis://127.0.0.1:{proxy.port}/0"])
        await layer.group_send("call.pubsub-gone", {"type": "x"})  # connected
        proxy.down()
        results = await asyncio.wait_for(
            asyncio.gather(
                *(layer.group_send("call.pubsub-gone", {"type": "x", "n": n}) for n in range(5)),
                return_exceptions=True,
            ),
            timeout=20,
        )
        assert len(results) == 5 and all(isinstance(r, LAYER_ERRORS) for r in results), results
        await layer.close()
    finally:
        proxy.stop()


# --- 100 calls at once lose nothing ---------------------------------------------------------------------

PAIRS = 100
CANDIDATES_EACH = 25


@pytest.fixture
def hundred_calls(transactional_db):
    return [make_call_with() for _ in range(PAIRS)]


async def test_100_concurrent_pairs_exchanging_candidates_lose_nothing(sockets, redis_layer, hundred_calls):
    calls = hundred_calls
    before = sum(dropped(where) for where in ("group_send", "send", "receive_buffer"))
    pairs = []
    for call in calls:
        caller = await sockets.signaling(call.id, call.caller)
        callee = await sockets.signaling(call.id, call.callees[0])
        await receive_type(caller, "join")
        pairs.append((caller, callee))

    async def send_burst(socket, tag):
        for n in range(CANDIDATES_EACH):
            await socket.send_to(text_data=frame(type="ice_candidate", candidate={**CANDIDATE, "sdpMid": f"{tag}-{n}"}))

    async def receive_burst(socket, tag):
        got = []
        for _ in range(CANDIDATES_EACH):
            got.append((await receive_type(socket, "ice_candidate", timeout=30))["candidate"]["sdpMid"])
        assert got == [f"{tag}-{n}" for n in range(CANDIDATES_EACH)]  # all of them, in order
        return len(got)

    started = time.monotonic()
    work = []
    for i, (caller, callee) in enumerate(pairs):
        work += [send_burst(caller, f"a{i}"), send_burst(callee, f"b{i}")]
        work += [receive_burst(callee, f"a{i}"), receive_burst(caller, f"b{i}")]
    results = await asyncio.gather(*work)
    elapsed = time.monotonic() - started

    received = sum(r for r in results if r)
    assert received == PAIRS * 2 * CANDIDATES_EACH
    assert sum(dropped(where) for where in ("group_send", "send", "receive_buffer")) == before
    for caller, callee in pairs:
        assert await caller.receive_nothing(timeout=0.01) and await callee.receive_nothing(timeout=0.01)
    print(f"\n{PAIRS} pairs, {received} candidates relayed over Redis in {elapsed:.2f} s, 0 dropped")


# --- Redis away ----------------------------------------------------------------------------------------


@pytest.fixture
def redis_proxy(settings, redis_layer):
    """The channel layer reaches Redis through a proxy the test can take down."""
    proxy = TcpProxy(target_host="127.0.0.1", target_port=REDIS_PORT).start()
    prefix = unique_prefix()
    settings.CHANNEL_LAYERS = redis_layer_settings(port=proxy.port, prefix=prefix)
    try:
        yield proxy
    finally:
        proxy.stop()
        delete_prefix(prefix)


@pytest.fixture
def two_calls(transactional_db):
    return make_call_with(), make_call_with()


async def test_without_redis_sockets_are_refused_clearly_rest_goes_on_and_recovery_needs_no_restart(
    sockets, redis_proxy, two_calls, settings
):
    settings.METRICS_TOKEN = "operator-token-for-the-ready-report"
    first_call, second_call = two_calls
    caller = await sockets.signaling(first_call.id, first_call.caller)
    callee = await sockets.signaling(first_call.id, first_call.callees[0])
    await receive_type(caller, "join")

    redis_proxy.down()
    # Open sockets can no longer relay: they are told and closed, not left silently deaf.
    for socket in (caller, callee):
        error = await expect_refusal(socket, 4503)
        assert error["code"] == "unavailable"
    # New sockets are refused with the same clear reason.
    refused = await sockets.connect_signaling(second_call.id, second_call.caller)
    assert "unavailable" in (await expect_refusal(refused, 4503))["message"]

    client = Client(HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}")  # the full /health/ready report
    assert (await database_sync_to_async(client.get)("/health")).status_code == 200
    ready = (await database_sync_to_async(client.get)("/health/ready")).json()
    assert ready["channel_layer"]["state"] == "unavailable"
    ended = await database_sync_to_async(client.post)(
        f"/v1/calls/{first_call.id}/end",
        data="{}",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {first_call.caller.token}",
    )
    assert ended.status_code == 200  # REST does not need Redis (its event is logged as undelivered)

    redis_proxy.up()
    deadline = time.monotonic() + 10
    while True:  # no restart: the next socket simply works
        again = await sockets.connect_signaling(second_call.id, second_call.caller)
        first = await again.receive_json_from(timeout=5)
        if first["type"] == "participants" or time.monotonic() > deadline:
            break
        await again.disconnect()
        await asyncio.sleep(0.2)
    assert first["type"] == "participants"
    peer = await sockets.signaling(second_call.id, second_call.callees[0])
    await receive_type(again, "join")
    await peer.send_to(text_data=frame(type="offer", sdp="v=0"))
    await receive_type(again, "offer")
    ready = (await database_sync_to_async(client.get)("/health/ready")).json()
    assert ready["channel_layer"]["state"] == "ok"


# --- many messages at once: group_send_many and the call-event dispatcher ----------------------------


async def test_pubsub_group_send_many_keeps_the_order_in_one_pipeline_and_fails_only_the_shard_that_is_away(
    redis_layer, monkeypatch
):
    proxy = TcpProxy(target_host="127.0.0.1", target_port=REDIS_PORT).start()
    try:
        live = {"address": f"redis://127.0.0.1:{REDIS_PORT}/0"}
        away = {"address": f"redis://127.0.0.1:{proxy.port}/0"}
        layer = pubsub_layer(redis_layer, hosts=[live, away], capacity=1000)
        on_live = next(g for g in (f"call.many-{n}" for n in range(100)) if shard_index(g, 2) == 0)
        on_away = next(g for g in (f"call.many-{n}" for n in range(100)) if shard_index(g, 2) == 1)
        channel = await layer.new_channel()
        await layer.group_add(on_live, channel)
        proxy.down()
        rounds = pipeline_sizes(monkeypatch)
        messages = [(on_live if n % 3 else on_away, {"type": "x", "n": n}) for n in range(30)]
        errors = await asyncio.wait_for(layer.group_send_many(messages), timeout=20)

        assert [error is None for error in errors] == [bool(n % 3) for n in range(30)]
        assert all(isinstance(error, LAYER_ERRORS) for error in errors if error is not None)
        assert [(await layer.receive(channel))["n"] for _ in range(20)] == [n for n in range(30) if n % 3]
        assert 20 in rounds  # the live shard's twenty left in one pipeline (the other's tried its ten)
        await layer.close()
    finally:
        proxy.stop()


async def test_call_events_submitted_while_a_drain_is_due_join_it_in_order(redis_layer, monkeypatch):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("call.dispatch-order", channel)
    dispatcher = LayerDispatcher()
    dispatcher.bind_loop(asyncio.get_running_loop())
    drains = []
    original = asyncio.run_coroutine_threadsafe

    def counting(coroutine, loop):
        drains.append(loop)
        return original(coroutine, loop)

    monkeypatch.setattr(asyncio, "run_coroutine_threadsafe", counting)

    def submit_from(writer: int):
        for n in range(50):
            dispatcher.submit([("call.dispatch-order", {"type": "x", "writer": writer, "n": n})])

    # Four writing threads while the loop is busy (this very call holds it): one drain takes it all.
    writers = [threading.Thread(target=submit_from, args=(w,)) for w in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=10)

    received = [await asyncio.wait_for(layer.receive(channel), timeout=10) for _ in range(200)]
    assert len(drains) == 1
    for w in range(4):  # each writer's messages arrive, all of them, in the order it submitted them
        assert [m["n"] for m in received if m["writer"] == w] == list(range(50))
    await asyncio.sleep(0.05)
    dispatcher.submit([("call.dispatch-order", {"type": "x", "writer": 9, "n": 0})])  # the drain ended: a new one
    assert (await asyncio.wait_for(layer.receive(channel), timeout=10))["writer"] == 9
    assert len(drains) == 2
    await layer.close()
