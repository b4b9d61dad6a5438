"""What an idle socket keeps in the process (docs/benchmarks.md, section 4): no cache client of
its own, and on the pub/sub layer one task waiting for the server, none reading its channel."""

import asyncio
import gc

import pytest
from channels.db import database_sync_to_async
from django.core.cache.backends.base import BaseCache

from signaling.layers import PubSubChannelLayer
from tests.signaling.conftest import make_person, redis_layer_settings

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

SOCKETS = 20


def live_cache_clients() -> int:
    gc.collect()
    # type(), not isinstance(): the heap holds weak proxies, and isinstance() on one whose object
    # has gone raises ReferenceError (it did once in CI).
    return sum(issubclass(type(thing), BaseCache) for thing in gc.get_objects())


async def open_events_sockets(sockets, count: int) -> list:
    people = [await database_sync_to_async(make_person)() for _ in range(count)]
    return [await sockets.events(person) for person in people]


async def test_open_sockets_do_not_each_keep_a_cache_client(sockets):
    """The token check reads revocations from the cache; the client it uses belongs to the worker
    thread, not to the socket (sync_to_async used to leave one, with its Redis pool, in every
    socket's task)."""
    await open_events_sockets(sockets, 2)  # the pool threads exist and hold theirs
    before = live_cache_clients()
    await open_events_sockets(sockets, SOCKETS)
    assert live_cache_clients() - before < SOCKETS // 2


async def test_an_idle_pubsub_socket_keeps_one_task_besides_its_own(sockets, redis_layer):
    await open_events_sockets(sockets, 2)  # the layer's reader and the registry are running
    before = len(asyncio.all_tasks())
    opened = await open_events_sockets(sockets, SOCKETS)
    await asyncio.sleep(0.1)
    # Each socket: the application's task (the test communicator's) and the one waiting for the
    # server's next event; channels' await_many_dispatch would add a channel reader.
    assert len(asyncio.all_tasks()) - before <= 2 * len(opened)


async def test_a_channel_says_when_it_holds_a_message_and_goes_with_its_reader(redis_layer):
    layer = PubSubChannelLayer(**redis_layer_settings(prefix=redis_layer)["default"]["CONFIG"])
    channel = await layer.new_channel()
    ready = layer.receive_ready(channel)
    assert not ready.done()
    await layer.send(channel, {"type": "x", "n": 1})
    assert ready.done()
    assert layer.receive_nowait(channel) == {"type": "x", "n": 1}
    assert not layer.receive_ready(channel).done()  # empty again: a new wait
    await layer.send(channel, {"type": "x", "n": 2})
    assert (await layer.receive(channel))["n"] == 2  # the awaiting reader sees the same channel
    layer.receive_abandoned(channel)
    assert channel not in layer.channels  # no group reaches it: nothing is kept for it
    await layer.close()


async def test_an_abandoned_channel_in_a_group_is_kept_for_its_next_reader(redis_layer):
    """What a resume holder relies on: the socket stopped reading, its groups still reach it."""
    layer = PubSubChannelLayer(**redis_layer_settings(prefix=redis_layer)["default"]["CONFIG"])
    channel = await layer.new_channel()
    await layer.group_add("call.idle-kept", channel)
    layer.receive_ready(channel)
    layer.receive_abandoned(channel)
    await layer.group_send("call.idle-kept", {"type": "x", "n": 3})
    assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == 3
    await layer.close()
