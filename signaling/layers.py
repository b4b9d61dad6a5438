"""The channel layers the service runs on, with every drop counted instead of lost silently,
and the one wrapper through which signaling talks to the layer (so an unreachable Redis is a
clear error, not a crashed socket).

channels_redis drops a message in three places: ``send`` refuses with ``ChannelFull`` when the
receiving process's queue in Redis is at capacity; ``group_send`` skips such a queue and only
logs ``"%s of %s channels over capacity in group %s"`` at INFO; and a process's local buffer
for one socket (``BoundedQueue``) discards its oldest message when the socket stops reading.
The in-memory layer drops in ``send`` only (``group_send`` swallows its ``ChannelFull``).
The production layer, ``PubSubChannelLayer`` (below), keeps nothing in Redis and drops only in a
socket's buffer in its process (``receive_buffer``); what pub/sub loses while a connection is
down is not dropped silently either: the sockets concerned are closed (4503) and counted.
Each drop is counted in ``secureconnect_channel_layer_dropped_messages{where=...}``.
"""

from __future__ import annotations

import asyncio
import binascii
import collections
import contextlib
import functools
import itertools
import logging
import math
import threading
import time
import uuid
from datetime import UTC, datetime

import msgpack
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer, InMemoryChannelLayer
from channels_redis.core import BoundedQueue, RedisChannelLayer
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from core.timefmt import iso_z
from signaling import metrics

logger = logging.getLogger(__name__)

# channels_redis 4.3.0, core.RedisChannelLayer.group_send: the only trace of a group_send drop.
GROUP_SEND_DROP_LOG = "%s of %s channels over capacity in group %s"
CHANNELS_REDIS_LOGGER = "channels_redis.core"


def count_drop(where: str, count: int, target: str) -> None:
    metrics.layer_dropped_messages.labels(where=where).inc(count)
    logger.warning(
        "Channel layer dropped %d message(s) for %s (%s): a queue is at CHANNEL_LAYER_CAPACITY", count, target, where
    )


class CountingBoundedQueue(BoundedQueue):
    """A socket's local buffer in a Redis-layer process; full means the socket stopped reading."""

    def put_nowait(self, item):
        if self.full():
            count_drop("receive_buffer", 1, "a local socket buffer")
        return super().put_nowait(item)


class SendDropCounter:
    """Counts the messages a layer's ``send`` refuses with ``ChannelFull`` (then re-raises)."""

    async def send(self, channel, message):
        try:
            await super().send(channel, message)
        except ChannelFull:
            count_drop("send", 1, channel)
            raise


class OrderedGroupSends:
    """``group_send_many`` for a layer with no batched way: ``group_send`` of each, in order."""

    async def group_send_many(self, messages: list[tuple[str, dict]]) -> list[BaseException | None]:
        errors: list[BaseException | None] = []
        for group, message in messages:
            try:
                await self.group_send(group, message)
                errors.append(None)
            except LAYER_ERRORS as exc:
                errors.append(exc)
        return errors


class CountingRedisChannelLayer(OrderedGroupSends, SendDropCounter, RedisChannelLayer):
    """channels_redis's core layer, counting its drops, with a pool that waits for a connection.

    channels_redis builds a plain redis-py pool, which allows 100 connections and then raises
    ``MaxConnectionsError`` at once: a burst of more than 100 concurrent relays in one process
    (100 calls trading ICE candidates) would fail. A blocking pool makes the burst queue for a
    connection instead (for at most ``timeout`` seconds).

    Commands are retried once on a connection error: after a Redis outage the pool still holds
    connections that were cut, and the first use of each fails; the retry reconnects. While
    Redis is really away the retry is refused at once too, so failing stays fast."""

    POOL_SIZE = 100
    POOL_WAIT = 5  # seconds

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.receive_buffer = collections.defaultdict(functools.partial(CountingBoundedQueue, self.capacity))

    def create_pool(self, index):
        host = dict(self.hosts[index])
        if "address" not in host:  # sentinel or host/port entries: channels_redis's own pool
            return super().create_pool(index)
        host.setdefault("max_connections", self.POOL_SIZE)
        host.setdefault("timeout", self.POOL_WAIT)
        host.setdefault("retry", Retry(NoBackoff(), 1))
        return BlockingConnectionPool.from_url(host.pop("address"), **host)


class CountingInMemoryChannelLayer(OrderedGroupSends, SendDropCounter, InMemoryChannelLayer):
    pass


class GroupSendDropCounter(logging.Handler):
    """Counts channels_redis's group_send drops from its log record (it reports them nowhere else)
    and forwards every other record of that logger as if this handler were not there."""

    def __init__(self, forward_level: int):
        super().__init__(level=logging.NOTSET)
        self.forward_level = forward_level

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == GROUP_SEND_DROP_LOG and record.args:
            # A changed message format must never break the layer.
            with contextlib.suppress(TypeError, ValueError, IndexError):
                count_drop("group_send", int(record.args[0]), f"group {record.args[2]}")
        elif record.levelno >= self.forward_level:
            parent = logging.getLogger(CHANNELS_REDIS_LOGGER).parent
            if parent is not None:
                parent.handle(record)


def install_drop_counter() -> None:
    """Let group_send drops reach the counter whatever LOG_LEVEL is (idempotent).

    The channels_redis.core logger is set to INFO (the drop record's level) and stops
    propagating; the handler forwards its other records at the level they had before."""
    core_logger = logging.getLogger(CHANNELS_REDIS_LOGGER)
    if any(isinstance(handler, GroupSendDropCounter) for handler in core_logger.handlers):
        return
    handler = GroupSendDropCounter(forward_level=core_logger.getEffectiveLevel())
    core_logger.addHandler(handler)
    core_logger.setLevel(logging.INFO)
    core_logger.propagate = False


# --- reachability --------------------------------------------------------------------------------


class LayerUnavailable(Exception):
    """The channel layer (Redis) cannot be reached; the socket is closed with 4503."""

    def __init__(self, message: str = "Signaling is temporarily unavailable; reconnect shortly."):
        super().__init__(message)
        self.message = message


# What an unreachable Redis raises through channels_redis (redis-py's errors, or the socket's).
LAYER_ERRORS = (RedisError, OSError, asyncio.TimeoutError)

_status_lock = threading.Lock()
_status = {"state": "unknown", "last_error": None, "since": None}


def _set_status(state: str, error: str | None = None) -> None:
    with _status_lock:
        if _status["state"] != state:
            _status["since"] = iso_z(datetime.now(UTC))
            if state == "unavailable":
                logger.warning("Channel layer unavailable: %s", error)
            elif _status["state"] == "unavailable":
                logger.info("Channel layer reachable again")
        _status["state"] = state
        if error:
            _status["last_error"] = error


def layer_status() -> dict:
    """What this process last saw of the channel layer (no I/O: safe for a readiness probe)."""
    from django.conf import settings

    backend = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    with _status_lock:
        return {"backend": "memory" if "InMemory" in backend else "redis", **_status}


def report_layer_failure(operation: str, exc: BaseException) -> None:
    metrics.layer_failures.labels(operation=operation).inc()
    _set_status("unavailable", f"{type(exc).__name__}: {exc}"[:300])


async def layer_call(operation: str, awaitable):
    """Await one channel-layer operation; an unreachable layer raises ``LayerUnavailable``."""
    try:
        result = await awaitable
    except LAYER_ERRORS as exc:
        report_layer_failure(operation, exc)
        raise LayerUnavailable() from exc
    _set_status("ok")
    return result


async def group_send_in_order(layer, messages: list[tuple[str, dict]]) -> list[tuple[tuple[str, dict], BaseException]]:
    """``group_send`` of each ``(group, message)`` in order, batched where the layer can
    (``group_send_many``), reported as ``layer_call`` reports; the messages not delivered, each
    with its error."""
    errors = await layer.group_send_many(messages)
    failed = [(sent, error) for sent, error in zip(messages, errors, strict=True) if error is not None]
    if failed:
        report_layer_failure("group_send", failed[0][1])
    else:
        _set_status("ok")
    return failed


# --- the production layer: Redis pub/sub, sharded, with lost subscriptions reported ------------


class SubscriptionLost(ConnectionError):
    """A socket's subscription was cut (its shard's connection dropped): what was published
    meanwhile is gone, so the socket is closed (4503) rather than left silently deaf."""


_LOST = object()  # queued in a local channel's buffer where its subscription was cut


class LocalChannel:
    """A socket's buffer in this process (pub/sub keeps nothing in Redis)."""

    __slots__ = ("groups", "queue", "waiter")

    def __init__(self):
        self.queue: collections.deque | None = None  # made by the first message (~0.7 KiB an idle socket saves)
        self.waiter: asyncio.Future | None = None
        self.groups: set[str] = set()


def shard_index(group: str, shards: int) -> int:
    """Which of ``shards`` Redis servers carries ``group``: a call's groups (``call.<id>``,
    ``call.<id>.user.<id>``) all land on the shard of ``call.<id>``; a user's on ``user.<id>``'s."""
    key = ".".join(group.split(".", 2)[:2])
    return binascii.crc32(key.encode()) % shards


class PubSubShard:
    """One Redis server of the layer: a pool for PUBLISH and one subscriber connection, read by
    one task, that carries every subscription this process holds on the shard.

    When the subscriber connection drops (Redis restarted, network cut, no answer to a ping), the
    layer is told which subscriptions were cut before anything is resubscribed; the task then
    reconnects with backoff. While the shard is down, subscribing and publishing fail at once."""

    PING_INTERVAL = 5.0  # seconds between pings on the subscriber connection
    # A subscriber connection with no answer for this long is cut. Generous: an overloaded process
    # reads its subscriptions late (seconds, in bench/relay at 2,500 msg/s offered), and that
    # must not look like a dead connection.
    PONG_TIMEOUT = 30.0
    JOIN_TIMEOUT = 10.0  # seconds a group_add waits for Redis to confirm (the same backlog)
    BACKOFF = (0.05, 0.1, 0.25, 0.5, 1.0)
    PUBLISH_BATCH = 500  # PUBLISHes in one pipeline at most

    def __init__(self, layer: PubSubChannelLayer, index: int, host: dict | str):
        options = {"address": host} if isinstance(host, str) else dict(host)
        address = options.pop("address")
        options.setdefault("socket_connect_timeout", 2)
        options.setdefault("socket_timeout", 10)
        self.layer = layer
        self.index = index
        self.label = str(index)
        self.client = Redis(
            connection_pool=BlockingConnectionPool.from_url(
                address, max_connections=100, timeout=5, retry=Retry(NoBackoff(), 1), **options
            )
        )
        # RESP2: pub/sub replies are plain arrays (RESP3 would deliver them as push messages).
        self.subscriber_pool = ConnectionPool.from_url(address, **{**options, "socket_timeout": None, "protocol": 2})
        self.connection = None
        self.up = asyncio.Event()
        self.down = False  # the last connection attempt failed, or the connection was lost
        self.subscribed: dict[bytes, asyncio.Future] = {}  # confirmed when the future is done
        self.on_subscribed: dict[bytes, list] = {}  # members to activate at the confirmation
        self.barriers: dict[bytes, tuple[asyncio.Future, object]] = {}  # PING token -> (done, activate)
        self.tokens = itertools.count(1)
        self.task: asyncio.Task | None = None
        self.last_pong = 0.0
        self.outbox: list[tuple[bytes, bytes, asyncio.Future]] = []  # PUBLISHes waiting for a round trip
        self.flusher: asyncio.Task | None = None

    # --- subscribing ------------------------------------------------------------------------

    def start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run(), name=f"channel-layer-shard-{self.index}")

    async def join(self, name: bytes, activate) -> None:
        """Make sure ``name`` is subscribed, then call ``activate`` (synchronously, from the
        reader) at the point of the subscription's stream from which on a new member must get
        everything: the SUBSCRIBE confirmation, or for a subscription already there, the answer
        to a PING sent now (what was published before it arrives before the answer). Returns
        once that point has passed."""
        self.start()
        if not self.up.is_set():
            if self.down:
                raise ConnectionError(f"channel layer shard {self.index} is unreachable")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.up.wait(), timeout=self.layer.connect_timeout)
            if not self.up.is_set():
                raise ConnectionError(f"channel layer shard {self.index} did not connect")
        loop = asyncio.get_running_loop()
        confirmed = self.subscribed.get(name)
        if confirmed is None:
            confirmed = self.subscribed[name] = loop.create_future()
            self.on_subscribed[name] = [activate]
            await self._command("SUBSCRIBE", name)
        elif not confirmed.done():
            self.on_subscribed.setdefault(name, []).append(activate)
        else:
            token = str(next(self.tokens)).encode()
            confirmed = loop.create_future()
            self.barriers[token] = (confirmed, activate)
            await self._command("PING", token)
        await asyncio.wait_for(asyncio.shield(confirmed), timeout=self.JOIN_TIMEOUT)

    async def unsubscribe(self, name: bytes) -> None:
        confirmed = self.subscribed.pop(name, None)
        self.on_subscribed.pop(name, None)
        if confirmed is not None and not confirmed.done():
            confirmed.set_exception(ConnectionError("unsubscribed"))
            confirmed.exception()  # retrieved: nobody waits for it (no channel wants the group)
        if confirmed is not None and self.up.is_set():
            with contextlib.suppress(*LAYER_ERRORS):
                await self._command("UNSUBSCRIBE", name)

    async def _command(self, *args) -> None:
        """Write on the subscriber connection (its reader task reads the reply); never reconnects
        it on the side, which would lose its subscriptions unseen."""
        connection = self.connection
        if connection is None or not connection.is_connected:
            raise ConnectionError(f"channel layer shard {self.index} is not connected")
        await connection.send_packed_command(connection.pack_command(*args), check_health=False)

    async def publish(self, name: bytes, data: bytes) -> int:
        """PUBLISH, in the order of the calls; how many subscribers Redis counted.

        The PUBLISHes waiting while one round trip is out leave together in one pipeline (one
        connection taken from the pool, one write, one read of the replies): at 100 pairs
        saturated, taking a pooled connection for each message was half the server's samples."""
        return await self.enqueue(name, data)

    def enqueue(self, name: bytes, data: bytes) -> asyncio.Future:
        """Queue a PUBLISH behind those already queued (no task, no await): its future gets the
        subscriber count, or the error."""
        if self.down and not self.up.is_set():
            raise ConnectionError(f"channel layer shard {self.index} is unreachable")
        loop = asyncio.get_running_loop()
        sent = loop.create_future()
        self.outbox.append((name, data, sent))
        if self.flusher is None or self.flusher.done() or self.flusher.get_loop() is not loop:
            self.flusher = loop.create_task(self._flush(), name=f"channel-layer-publish-{self.index}")
        return sent

    async def _flush(self) -> None:
        """Send what waits, batch after batch, until nothing does. A task of its own, so that
        a cancelled sender never cuts the round trip of the others' messages."""
        while self.outbox:
            batch, self.outbox = self.outbox[: self.PUBLISH_BATCH], self.outbox[self.PUBLISH_BATCH :]
            try:
                async with self.client.pipeline(transaction=False) as pipeline:
                    for name, data, _ in batch:
                        pipeline.publish(name, data)
                    counts = await pipeline.execute()
            except Exception as exc:
                for *_, sent in batch:
                    if not sent.done():
                        sent.set_exception(exc)
                continue
            for (*_, sent), count in zip(batch, counts, strict=True):
                if not sent.done():  # its sender may have been cancelled meanwhile
                    sent.set_result(count)

    # --- the subscriber connection ----------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while True:
            connection = self.subscriber_pool.make_connection()
            pinger = None
            try:
                await connection.connect()
                names = [self.layer.inbox, *(n for n in self.subscribed if n != self.layer.inbox)]
                self.subscribed = {name: asyncio.get_running_loop().create_future() for name in names}
                await connection.send_command("SUBSCRIBE", *names)
                self.connection, self.down, attempt = connection, False, 0
                self.last_pong = time.monotonic()
                self.up.set()
                pinger = asyncio.get_running_loop().create_task(self._ping(connection))
                await self._read(connection)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await connection.disconnect()
                raise
            except Exception as exc:
                self._lost(exc)
            finally:
                if pinger is not None:
                    pinger.cancel()
            with contextlib.suppress(Exception):
                await connection.disconnect()
            await asyncio.sleep(self.BACKOFF[min(attempt, len(self.BACKOFF) - 1)])
            attempt += 1

    async def _read(self, connection) -> None:
        on_message = self.layer._on_message
        while True:
            response = await connection.read_response(disable_decoding=True, timeout=math.inf)
            kind = response[0]
            if kind == b"message":
                on_message(response[1], response[2])
            elif kind == b"subscribe":
                confirmed = self.subscribed.get(response[1])
                for activate in self.on_subscribed.pop(response[1], ()):
                    activate()
                if confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)
            elif kind == b"pong":
                self.last_pong = time.monotonic()
                barrier = self.barriers.pop(response[1], None)
                if barrier is not None:
                    barrier[1]()
                    if not barrier[0].done():
                        barrier[0].set_result(None)

    async def _ping(self, connection) -> None:
        while True:
            await asyncio.sleep(self.PING_INTERVAL)
            if time.monotonic() - self.last_pong > self.PONG_TIMEOUT:
                await connection.disconnect()  # the reader sees it and reports the loss
                return
            await self._command("PING")

    def _lost(self, exc: BaseException) -> None:
        was_up = self.up.is_set()
        self.up.clear()
        self.down = True
        self.connection = None
        cut, self.subscribed = self.subscribed, {}
        barriers, self.barriers, self.on_subscribed = self.barriers, {}, {}
        for confirmed in [*cut.values(), *(barrier[0] for barrier in barriers.values())]:
            if not confirmed.done():
                confirmed.set_exception(ConnectionError("channel layer subscription cut"))
                confirmed.exception()  # retrieved: nobody may be waiting
        if was_up:
            metrics.layer_reconnects.labels(shard=self.label).inc()
            report_layer_failure("subscribe", exc)
            self.layer._subscriptions_cut(self, list(cut))

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
        self.task = None
        if (
            self.flusher is not None
            and not self.flusher.done()
            and self.flusher.get_loop() is asyncio.get_running_loop()
        ):
            with contextlib.suppress(Exception):
                await self.flusher  # what was handed to publish() leaves before the pool closes
        self.up.clear()
        await self.client.aclose()
        await self.subscriber_pool.disconnect()


class PubSubChannelLayer(BaseChannelLayer):
    """The service's channel layer: Redis pub/sub over one or more Redis servers (shards).

    - A group is a Redis pub/sub channel on the shard its call (or user) hashes to: ``group_send``
      is one PUBLISH, received by each process that has a member, once, and handed to its local
      members. All of a call's groups (``call.<id>``, ``call.<id>.user.<id>``) share a shard.
    - A socket's own channel (``send``) is delivered in this process when the socket is here, and
      otherwise published to the owning process's inbox (subscribed on every shard).
    - Nothing is kept in Redis; each socket's buffer here holds up to ``capacity`` messages (the
      oldest is dropped and counted, ``where="receive_buffer"``, past that).
    - No silent loss: when a shard's subscriber connection drops, every local channel subscribed
      through it gets ``SubscriptionLost`` from ``receive`` (the consumer closes with 4503; counted
      in ``secureconnect_channel_layer_cut_channels``), and sockets on the other shards go on.

    channels-redis's ``RedisPubSubChannelLayer`` resubscribes after a reconnect without telling
    anyone, which loses what was published meanwhile silently; hence this layer."""

    extensions = ["groups"]

    def __init__(self, hosts=None, prefix: str = "secureconnect", capacity: int = 10000, expiry: int = 60, **kwargs):
        super().__init__(expiry=expiry, capacity=capacity)
        self.hosts = list(hosts or ["redis://127.0.0.1:6379/0"])
        self.prefix = prefix
        self.connect_timeout = float(kwargs.get("connect_timeout", 2.0))
        self.process = uuid.uuid4().hex[:12]
        self.inbox = f"{prefix}.p.{self.process}".encode()
        self.group_prefix = f"{prefix}.g."
        self._loop = None
        self._counter = itertools.count()
        self._reset()

    def _reset(self) -> None:
        self.shards = [PubSubShard(self, index, host) for index, host in enumerate(self.hosts)]
        self.channels: dict[str, LocalChannel] = {}
        self.groups: dict[str, set[str]] = {}  # group -> local channel names receiving it
        self.wanted: collections.Counter = collections.Counter()  # group -> local members, joining too

    def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests): nothing of the old one is usable
            self._loop = loop
            self._reset()

    # --- names ----------------------------------------------------------------------------------

    def shard_for(self, group: str) -> PubSubShard:
        return self.shards[shard_index(group, len(self.shards))]

    def _process_of(self, channel: str) -> str | None:
        head, bang, _ = channel.partition("!")
        return head.rpartition(".")[2] if bang else None

    # --- channels -------------------------------------------------------------------------------

    async def new_channel(self, prefix: str = "specific.") -> str:
        self._bind()
        for shard in self.shards:  # the inbox: sends from other processes reach it on any shard
            shard.start()
        channel = f"{prefix}{self.process}!{next(self._counter)}"
        self.channels[channel] = LocalChannel()  # gone when its reader stops with no groups left
        return channel

    async def send(self, channel: str, message: dict) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self._bind()
        process = self._process_of(channel)
        if process is None:
            raise ValueError(f"{type(self).__name__} carries process-specific channels and groups only: {channel}")
        if process == self.process:
            local = self.channels.get(channel)
            if local is not None:
                self._deliver(channel, local, message)
            return
        data = msgpack.packb([channel, message], use_bin_type=True)
        inbox = f"{self.prefix}.p.{process}".encode()
        first = binascii.crc32(process.encode()) % len(self.shards)
        error = None
        for offset in range(len(self.shards)):  # another shard if this one is away
            try:
                await self.shards[(first + offset) % len(self.shards)].publish(inbox, data)
                return
            except LAYER_ERRORS as exc:
                error = exc
        raise error

    async def receive(self, channel: str) -> dict:
        self._bind()
        local = self.channels.get(channel)
        if local is None:
            local = self.channels[channel] = LocalChannel()
        while not local.queue:
            local.waiter = self._loop.create_future()
            try:
                await local.waiter
            except asyncio.CancelledError:
                self.receive_abandoned(channel)
                raise
            local.waiter = None
        return self.receive_nowait(channel)

    # A reader that waits for its channel and a server event at once, without a task per channel
    # (signaling.consumers.SocketConsumer._dispatch_from): ``receive_ready``, then ``receive_nowait``
    # once that is done, and ``receive_abandoned`` when it stops reading.

    def receive_ready(self, channel: str) -> asyncio.Future:
        """A future that is done once ``channel`` holds a message (at once if it does now)."""
        self._bind()
        local = self.channels.get(channel)
        if local is None:
            local = self.channels[channel] = LocalChannel()
        if local.queue:
            done = self._loop.create_future()
            done.set_result(None)
            return done
        if local.waiter is None or local.waiter.done():
            local.waiter = self._loop.create_future()
        return local.waiter

    def receive_nowait(self, channel: str) -> dict:
        """The channel's next message; only when ``receive_ready`` said it holds one."""
        message = self.channels[channel].queue.popleft()
        if message is _LOST:
            raise SubscriptionLost("This socket's channel-layer subscription was cut; messages may be lost.")
        return message

    def receive_abandoned(self, channel: str) -> None:
        """The reader of ``channel`` went; the channel goes too unless a group still reaches it."""
        local = self.channels.get(channel)
        if local is None:
            return
        local.waiter = None
        if not local.groups:
            self.channels.pop(channel, None)

    def _deliver(self, channel: str, local: LocalChannel, message) -> None:
        queue = local.queue
        if queue is None:
            queue = local.queue = collections.deque()
        queue.append(message)
        if len(queue) > self.capacity:
            queue.popleft()
            count_drop("receive_buffer", 1, channel)
        waiter = local.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_message(self, name: bytes, data: bytes) -> None:
        message = msgpack.unpackb(data, raw=False)
        if name == self.inbox:
            channel, message = message
            local = self.channels.get(channel)
            if local is not None:
                self._deliver(channel, local, message)
            return
        members = self.groups.get(name.decode()[len(self.group_prefix) :])
        if members:
            for channel in members:
                local = self.channels.get(channel)
                if local is not None:
                    self._deliver(channel, local, message)

    def _subscriptions_cut(self, shard: PubSubShard, names: list[bytes]) -> None:
        cut = set()
        for name in names:
            if name == self.inbox:
                continue  # a resume in flight times out (resume_incomplete); the inbox resubscribes
            group = name.decode()[len(self.group_prefix) :]
            cut.update(self.groups.get(group, ()))
        for channel in cut:
            local = self.channels.get(channel)
            if local is not None:
                self._deliver(channel, local, _LOST)
        metrics.layer_cut_channels.labels(shard=shard.label).inc(len(cut))
        logger.warning("Channel layer shard %s connection lost: %d socket channel(s) cut", shard.label, len(cut))

    # --- groups ---------------------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        """Join ``group``; once this returns, every message published to it reaches ``channel``
        (and nothing published before: no stale ``join`` for a socket that just arrived)."""
        self._bind()
        self.require_valid_group_name(group)
        local = self.channels.get(channel)
        if local is None:
            local = self.channels[channel] = LocalChannel()
        if group in local.groups:
            return  # a member already (the registry's hourly refresh): nothing expires here
        local.groups.add(group)
        self.wanted[group] += 1

        def activate():
            if group in local.groups and self.channels.get(channel) is local:
                self.groups.setdefault(group, set()).add(channel)

        try:
            await self.shard_for(group).join(f"{self.group_prefix}{group}".encode(), activate)
        except BaseException:
            await self.group_discard(group, channel)
            raise

    async def group_discard(self, group: str, channel: str) -> None:
        self._bind()
        local = self.channels.get(channel)
        if local is None or group not in local.groups:
            return
        local.groups.discard(group)
        members = self.groups.get(group)
        if members is not None:
            members.discard(channel)
            if not members:
                del self.groups[group]
        if not local.groups and local.waiter is None:  # nobody reads it, nothing reaches it
            del self.channels[channel]
        self.wanted[group] -= 1
        if self.wanted[group] <= 0:
            del self.wanted[group]
            await self.shard_for(group).unsubscribe(f"{self.group_prefix}{group}".encode())

    async def group_send(self, group: str, message: dict) -> None:
        self._bind()
        self.require_valid_group_name(group)
        await self.shard_for(group).publish(f"{self.group_prefix}{group}".encode(), msgpack.packb(message))

    async def group_send_many(self, messages: list[tuple[str, dict]]) -> list[BaseException | None]:
        """``group_send`` of each ``(group, message)``, queued at once and in order, so that a
        shard's share leaves in one pipeline; the error of each (None: sent). One unreachable
        shard fails only its own messages."""
        self._bind()
        queued: list[asyncio.Future | BaseException] = []
        for group, message in messages:
            self.require_valid_group_name(group)
            try:
                queued.append(
                    self.shard_for(group).enqueue(f"{self.group_prefix}{group}".encode(), msgpack.packb(message))
                )
            except LAYER_ERRORS as exc:
                queued.append(exc)
        futures = [q for q in queued if isinstance(q, asyncio.Future)]
        await asyncio.gather(*futures, return_exceptions=True)
        return [q if isinstance(q, BaseException) else q.exception() for q in queued]

    async def flush(self) -> None:
        await self.close()

    async def close(self) -> None:
        if self._loop is asyncio.get_running_loop():
            for shard in self.shards:
                await shard.close()
        self._reset()
