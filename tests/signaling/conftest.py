"""Fixtures for signaling tests: channel layers (in memory, or a real Redis under a prefix of
this run's own), users with access tokens, calls, and sockets opened through the real ASGI
application with channels' WebsocketCommunicator."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from dataclasses import dataclass

import pytest
import pytest_asyncio
import redis
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from accounts.tokens import issue_token_pair
from calls.models import Call
from core.cache import delete_matching
from signaling.limits import events_slots, signaling_slots
from tests.factories import make_call, make_user

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
SIGNALING_PATH = "/v1/calls/ws/signaling"
EVENTS_PATH = "/v1/ws/events"


def redis_reachable() -> bool:
    try:
        return bool(redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def unique_prefix() -> str:
    return f"test-signaling-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def delete_prefix(prefix: str) -> None:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        delete_matching(client, f"{prefix}*")
    finally:
        client.close()


def redis_layer_settings(
    *, port: int = REDIS_PORT, prefix: str, capacity: int = 10000, expiry: int = 60, backend: str = "pubsub"
) -> dict:
    """The production layer (``pubsub``: signaling.layers.PubSubChannelLayer) or channels_redis's
    core layer (``core``) on the Redis at ``port``."""
    host = {"address": f"redis://{REDIS_HOST}:{port}/0", "socket_connect_timeout": 2, "socket_timeout": 10}
    if backend == "pubsub":
        config = {"hosts": [host], "prefix": prefix, "capacity": capacity}
        return {"default": {"BACKEND": "signaling.layers.PubSubChannelLayer", "CONFIG": config}}
    config = {"hosts": [host], "prefix": prefix, "capacity": capacity, "expiry": expiry}
    return {"default": {"BACKEND": "signaling.layers.CountingRedisChannelLayer", "CONFIG": config}}


@pytest.fixture(autouse=True)
def memory_layer(settings):
    """Every test starts on a fresh in-memory layer (channels rebuilds it when the setting changes)."""
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "signaling.layers.CountingInMemoryChannelLayer", "CONFIG": {"capacity": 10000}}
    }
    yield
    assert signaling_slots.in_use == 0 and events_slots.in_use == 0, "a test left sockets counted"


@pytest.fixture
def redis_layer(settings):
    """The channel layer on the real Redis, under a prefix no other run uses."""
    if not redis_reachable():
        pytest.skip(f"needs Redis on {REDIS_HOST}:{REDIS_PORT}")
    prefix = unique_prefix()
    settings.CHANNEL_LAYERS = redis_layer_settings(prefix=prefix)
    yield prefix
    delete_prefix(prefix)


@dataclass
class Person:
    user: object
    token: str

    @property
    def id(self) -> str:
        return str(self.user.id)


def make_person(**fields) -> Person:
    user = make_user(**fields)
    return Person(user, issue_token_pair(user)["access_token"])


@dataclass
class CallFixture:
    call: Call
    caller: Person
    callees: list[Person]

    @property
    def id(self) -> str:
        return str(self.call.id)


def make_call_with(*, callees: int = 1, **fields) -> CallFixture:
    caller = make_person()
    people = [make_person() for _ in range(callees)]
    call = make_call(caller=caller.user, callees=[p.user for p in people], **fields)
    return CallFixture(call, caller, people)


@pytest.fixture
def two_party(transactional_db) -> CallFixture:
    return make_call_with(callees=1)


@pytest.fixture
def three_party(transactional_db) -> CallFixture:
    return make_call_with(callees=2)


class Sockets:
    """Opens sockets through the real ASGI application and closes whatever is left at teardown."""

    def __init__(self):
        from secureconnect.asgi import application

        self.application = application
        self.open: list[WebsocketCommunicator] = []

    def communicator(self, path: str, *, token=None, subprotocols=None, origin=None, headers=()):
        all_headers = list(headers)
        if token is not None:
            all_headers.append((b"authorization", f"Bearer {token}".encode()))
        if origin is not None:
            all_headers.append((b"origin", origin.encode()))
        communicator = WebsocketCommunicator(self.application, path, headers=all_headers, subprotocols=subprotocols)
        self.open.append(communicator)
        return communicator

    async def signaling(self, call_id, person: Person | None = None, **kwargs) -> WebsocketCommunicator:
        """A signaling socket, accepted and past its participants message."""
        communicator = await self.connect_signaling(call_id, person, **kwargs)
        first = await communicator.receive_json_from(timeout=5)
        assert first["type"] == "participants", first
        communicator.participants = first["participants"]
        return communicator

    async def connect_signaling(self, call_id, person: Person | None = None, **kwargs) -> WebsocketCommunicator:
        if person is not None:
            kwargs.setdefault("token", person.token)
        query = "" if call_id is None else f"?call_id={call_id}"
        communicator = self.communicator(f"{SIGNALING_PATH}{query}", **kwargs)
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        return communicator

    async def events(self, person: Person, **kwargs) -> WebsocketCommunicator:
        communicator = self.communicator(EVENTS_PATH, token=person.token, **kwargs)
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        return communicator

    async def close_all(self) -> None:
        for communicator in self.open:
            # already finished (e.g. an application error a test asserted on): nothing to close
            with contextlib.suppress(Exception):
                await communicator.disconnect(timeout=5)
        # Connections the consumers opened on asgiref's thread for sync code stay open there
        # (close_old_connections keeps a healthy one); close them, or the test database cannot be dropped.
        await sync_to_async(connections.close_all)()


@pytest_asyncio.fixture
async def sockets():
    opened = Sockets()
    yield opened
    await opened.close_all()


async def expect_refusal(communicator: WebsocketCommunicator, code: int) -> dict:
    """The error message then the close frame of a refused (or ended) socket."""
    error = await communicator.receive_json_from(timeout=5)
    assert error["type"] == "error" and error["close_code"] == code, error
    closing = await communicator.receive_output(timeout=5)
    assert closing["type"] == "websocket.close" and closing["code"] == code, closing
    assert closing["reason"] == error["message"][:123]
    return error


async def expect_close(communicator: WebsocketCommunicator, code: int) -> dict:
    closing = await communicator.receive_output(timeout=5)
    assert closing["type"] == "websocket.close" and closing["code"] == code, closing
    return closing


async def receive_type(communicator: WebsocketCommunicator, message_type: str, timeout: float = 5) -> dict:
    message = await communicator.receive_json_from(timeout=timeout)
    assert message["type"] == message_type, message
    return message


def frame(**fields) -> str:
    return json.dumps(fields)
