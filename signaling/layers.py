"""The channel layers the service runs on, with every drop counted instead of lost silently,
and the one wrapper through which signaling talks to the layer (so an unreachable Redis is a
clear error, not a crashed socket).

channels_redis drops a message in three places: ``send`` refuses with ``ChannelFull`` when the
receiving process's queue in Redis is at capacity; ``group_send`` skips such a queue and only
logs ``"%s of %s channels over capacity in group %s"`` at INFO; and a process's local buffer
for one socket (``BoundedQueue``) discards its oldest message when the socket stops reading.
The in-memory layer drops in ``send`` only (``group_send`` swallows its ``ChannelFull``).
Each is counted in ``secureconnect_channel_layer_dropped_messages{where=...}``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import threading
from datetime import UTC, datetime

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer
from channels_redis.core import BoundedQueue, RedisChannelLayer
from redis.asyncio import BlockingConnectionPool
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


class CountingRedisChannelLayer(SendDropCounter, RedisChannelLayer):
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


class CountingInMemoryChannelLayer(SendDropCounter, InMemoryChannelLayer):
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
        return {"backend": "redis" if "Redis" in backend else "memory", **_status}


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
