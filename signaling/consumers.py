"""The two WebSocket endpoints, as thin adapters: authenticate the handshake, validate each
frame (``signaling.protocol``), call into the domain, relay through the channel layer.

- ``SignalingConsumer`` at ``/v1/calls/ws/signaling?call_id=<uuid>``: WebRTC offers, answers,
  ICE candidates and mute state between the participants of one call.
- ``EventsConsumer`` at ``/v1/ws/events``: what happens to the calls that concern a user
  (incoming_call, call_accepted, ...), from ``signaling.call_events``.

Refusals accept the handshake, send one ``{"type": "error", "close_code": ...}`` message and
close with that code (daphne 4.2 drops a close frame's reason text, so the message carries it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch
from django.conf import settings
from django.db import DatabaseError

from calls.exceptions import CallError
from calls.services import call_set_media
from signaling import metrics, protocol
from signaling.authentication import (
    accepted_subprotocol,
    call_id_from_query,
    origin_check,
    query_params,
    socket_authenticate,
)
from signaling.call_events import SIGNAL_RELAY, dispatcher
from signaling.groups import group_name
from signaling.layers import LAYER_ERRORS, LayerUnavailable, layer_call, report_layer_failure
from signaling.limits import ConnectionSlots, TokenBucket, events_slots, signaling_slots
from signaling.participation import participation_check
from signaling.presence import PRESENCE_REFRESH, presence_connected, presence_enter, presence_leave
from signaling.protocol import (
    IDLE_TIMEOUT,
    NORMAL,
    POLICY_VIOLATION,
    REFUSABLE_ERRORS,
    TOO_MANY_CONNECTIONS,
    ErrorCode,
    MessageType,
    ProtocolError,
    Refused,
    refusal_for,
)

logger = logging.getLogger(__name__)

# A client that keeps sending frames the schema refuses is closed: 20 at once, then 1 a second.
INVALID_MESSAGE_BURST = 20
INVALID_MESSAGE_RATE = 1.0
# Group memberships expire in Redis after a day (channels_redis group_expiry); refresh them hourly.
GROUP_REFRESH = 3600
MAX_CLOSE_REASON_BYTES = 123  # RFC 6455


class SocketConsumer(AsyncWebsocketConsumer):
    """What both endpoints share: the handshake checks, the per-process cap, rate limits, the
    idle timeout, and surviving an unreachable channel layer."""

    socket_kind = ""
    slots: ConnectionSlots
    allowed_types: frozenset[str] = frozenset({MessageType.PING})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.user_id: str | None = None
        self.accepted = False  # the handshake was accepted (refusals accept it too)
        self.joined = False  # the socket passed every check and is in its groups
        self.closed = False
        self.left = False
        self.slot_taken = False
        self.joined_groups: list[str] = []
        self.layer_down = False
        self.watchdog: asyncio.Task | None = None
        self.last_seen = time.monotonic()
        self.groups_refreshed = time.monotonic()
        self.rate = TokenBucket(rate=settings.WS_RATE_LIMIT, burst=settings.WS_RATE_BURST)
        self.invalid = TokenBucket(rate=INVALID_MESSAGE_RATE, burst=INVALID_MESSAGE_BURST)

    # --- plumbing: the channel layer may fail; that closes this socket, not the process ------

    async def __call__(self, scope, receive, send):
        """``AsyncConsumer.__call__`` with one change: a failing channel-layer receive (Redis
        away) becomes a ``layer.failed`` message that closes the socket with 4503, instead of an
        exception that kills the consumer with no reason given."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.base_send = send
        with contextlib.suppress(StopConsumer):
            await await_many_dispatch([receive, self._receive_from_layer], self.dispatch)

    async def _receive_from_layer(self) -> dict:
        if self.layer_down:  # reported once; then wait for the disconnect
            await asyncio.Event().wait()
        try:
            return await self.channel_layer.receive(self.channel_name)
        except LAYER_ERRORS as exc:
            self.layer_down = True
            report_layer_failure("receive", exc)
            return {"type": "layer.failed"}

    async def dispatch(self, message):
        # Channels' dispatch hops to a thread before every message to close stale database
        # connections; the handlers here reach the database only through
        # database_sync_to_async, which does that itself, so relaying stays on the loop.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def layer_failed(self, message):
        if self.accepted:  # before that, the handshake refuses with 4503 itself
            await self.end(refusal_for(LayerUnavailable()))

    # --- handshake ------------------------------------------------------------------------------

    async def websocket_connect(self, message):
        dispatcher.bind_loop(asyncio.get_running_loop())
        try:
            await self.check_request()
            origin_check(self.scope)
            if not self.slots.acquire():
                raise Refused(TOO_MANY_CONNECTIONS, "This server holds too many connections; retry shortly.")
            self.slot_taken = True
            claims = await sync_to_async(socket_authenticate, thread_sensitive=False)(self.scope)
            self.user_id = str(claims.user_id)
            await self.authorize()
            if self.layer_down:
                raise LayerUnavailable()
            for group in self.subscriptions():
                await layer_call("group_add", self.channel_layer.group_add(group, self.channel_name))
                self.joined_groups.append(group)
        except REFUSABLE_ERRORS as exc:
            await self.refuse(refusal_for(exc))
            return
        await self.accept(accepted_subprotocol(self.scope))
        self.accepted = self.joined = True
        self.last_seen = time.monotonic()
        self.watchdog = asyncio.create_task(self._watch())
        try:
            await self.opened()
        except LayerUnavailable as exc:
            await self.end(refusal_for(exc))

    async def check_request(self) -> None:
        """Refuse (4400) a request the endpoint cannot serve, before anything else."""
        query_params(self.scope)

    async def authorize(self) -> None:
        """Refuse a user who may not open this socket (after authentication)."""

    def subscriptions(self) -> list[str]:
        raise NotImplementedError

    async def opened(self) -> None:
        """Right after the handshake was accepted."""

    async def leaving(self) -> None:
        """Once, when the socket goes (closed by either side)."""

    # --- frames ---------------------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if self.closed or not self.joined:
            return
        self.last_seen = time.monotonic()
        if not self.rate.take():
            limit = f"{settings.WS_RATE_LIMIT:g} messages a second, bursts of {settings.WS_RATE_BURST}"
            await self.end(Refused(POLICY_VIOLATION, f"Message rate exceeded ({limit})."))
            return
        try:
            message = protocol.parse_client_frame(
                text=text_data,
                binary=bytes_data,
                participant_ids=self.participant_ids(),
                sender_id=self.user_id,
                allowed_types=self.allowed_types,
            )
        except ProtocolError as error:
            metrics.invalid_messages.labels(code=error.code).inc()
            await self.send_message(protocol.error_message(error.code, error.message))
            if not self.invalid.take():
                await self.end(Refused(POLICY_VIOLATION, "Too many invalid messages."))
            return
        if message.type == MessageType.PING:
            await self.send_message(protocol.pong_message())
            return
        try:
            await self.handle(message)
        except LayerUnavailable as exc:
            await self.end(refusal_for(exc))

    def participant_ids(self) -> tuple[str, ...]:
        return ()

    async def handle(self, message: protocol.ClientMessage) -> None:
        """A valid message other than ping."""

    async def send_message(self, message: dict) -> None:
        if not self.closed:
            await self.send(text_data=protocol.encode(message))

    # --- ending -----------------------------------------------------------------------------

    async def refuse(self, refusal: Refused) -> None:
        """Accept (so that a browser sees the code), say why, and close."""
        metrics.refused_sockets.labels(socket=self.socket_kind, code=str(refusal.close.code)).inc()
        if not self.accepted:
            await self.accept(accepted_subprotocol(self.scope))
            self.accepted = True
        await self.send_message(
            protocol.error_message(refusal.close.error, refusal.message, close_code=refusal.close.code)
        )
        await self.close_socket(refusal.close.code, refusal.message)

    async def end(self, refusal: Refused) -> None:
        """The server ends an open socket: leave (peers hear it now), then say why and close."""
        if self.closed:
            return
        await self.leave()
        await self.refuse(refusal)

    async def close_socket(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        encoded = reason.encode("utf-8")[:MAX_CLOSE_REASON_BYTES]
        await self.close(code=code, reason=encoded.decode("utf-8", "ignore"))

    async def leave(self) -> None:
        """Idempotent: stop the watchdog, tell the peers, leave the groups."""
        if self.left:
            return
        self.left = True
        if self.watchdog is not None and self.watchdog is not asyncio.current_task():
            self.watchdog.cancel()
        if self.joined and not self.layer_down:
            with contextlib.suppress(LayerUnavailable):
                await self.leaving()
        for group in self.joined_groups:
            with contextlib.suppress(LayerUnavailable):
                await layer_call("group_discard", self.channel_layer.group_discard(group, self.channel_name))
        self.joined_groups = []

    async def websocket_disconnect(self, message):
        self.closed = True
        try:
            await self.leave()
        finally:
            if self.slot_taken:
                self.slots.release()
                self.slot_taken = False
        raise StopConsumer()

    async def _watch(self) -> None:
        """Close the socket after WS_IDLE_TIMEOUT without a client message; refresh presence."""
        next_refresh = time.monotonic() + PRESENCE_REFRESH
        try:
            while not self.closed:
                now = time.monotonic()
                idle_deadline = self.last_seen + settings.WS_IDLE_TIMEOUT
                if now >= idle_deadline:
                    timeout = f"{settings.WS_IDLE_TIMEOUT:g}"
                    await self.end(Refused(IDLE_TIMEOUT, f"No message for {timeout} s; send ping to keep it open."))
                    return
                if now >= next_refresh:
                    await self.refresh()
                    next_refresh = now + PRESENCE_REFRESH
                await asyncio.sleep(max(0.01, min(idle_deadline, next_refresh) - now))
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Socket watchdog failed for user %s", self.user_id)

    async def refresh(self) -> None:
        if time.monotonic() - self.groups_refreshed >= GROUP_REFRESH:
            self.groups_refreshed = time.monotonic()
            for group in self.joined_groups:
                with contextlib.suppress(LayerUnavailable):
                    await layer_call("group_add", self.channel_layer.group_add(group, self.channel_name))


class SignalingConsumer(SocketConsumer):
    """One participant's socket in one call. See docs/signaling.md for the protocol."""

    socket_kind = "signaling"
    slots = signaling_slots
    allowed_types = frozenset(protocol.CLIENT_MESSAGES)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.call_id: str | None = None
        self.participation = None
        self.call_over = False

    async def check_request(self) -> None:
        self.call_id = call_id_from_query(self.scope)

    async def authorize(self) -> None:
        self.participation = await database_sync_to_async(participation_check)(
            call_id=self.call_id, user_id=self.user_id
        )

    def subscriptions(self) -> list[str]:
        return [group_name(call_id=self.call_id), group_name(call_id=self.call_id, user_id=self.user_id)]

    def participant_ids(self) -> tuple[str, ...]:
        return self.participation.participant_ids if self.participation else ()

    async def opened(self) -> None:
        """Register, see who is here, tell the others, then tell the newcomer who is here.

        Registering before looking means two sockets connecting at once each learn of the other
        at least once (by ``participants`` or ``join``). Sending ``participants`` last means that
        once a client has it, its ``join`` is out: a socket that connects after that point
        learns of it from ``participants`` only."""
        await presence_enter(call_id=self.call_id, user_id=self.user_id, channel_name=self.channel_name)
        others = [p for p in self.participant_ids() if p != self.user_id]
        connected = await presence_connected(call_id=self.call_id, user_ids=others)
        await self._broadcast(protocol.presence_message(MessageType.JOIN, call_id=self.call_id, user_id=self.user_id))
        await self.send_message(protocol.participants_message(call_id=self.call_id, connected_ids=connected))

    async def leaving(self) -> None:
        await presence_leave(call_id=self.call_id, user_id=self.user_id, channel_name=self.channel_name)
        if not self.call_over:
            leave = protocol.presence_message(MessageType.LEAVE, call_id=self.call_id, user_id=self.user_id)
            await self._broadcast(leave)

    async def refresh(self) -> None:
        await presence_enter(call_id=self.call_id, user_id=self.user_id, channel_name=self.channel_name)
        await super().refresh()

    async def handle(self, message: protocol.ClientMessage) -> None:
        out = protocol.relayed(message, call_id=self.call_id, sender_id=self.user_id)
        if message.target_id:
            await self._send_to(group_name(call_id=self.call_id, user_id=message.target_id), out)
        else:
            await self._broadcast(out)
        metrics.relayed_messages.labels(type=message.type).inc()
        change = protocol.media_change(message)
        if change:
            await self._record_media(change)

    async def _record_media(self, change: dict) -> None:
        """Save the mute state on the call (history, admin); the peers already have it."""
        try:
            await database_sync_to_async(call_set_media)(call_id=self.call_id, user_id=self.user_id, **change)
        except (CallError, DatabaseError) as exc:
            detail = exc.message if isinstance(exc, CallError) else "The database is unavailable."
            await self.send_message(protocol.error_message(ErrorCode.NOT_RECORDED, f"Relayed, not recorded: {detail}"))

    async def _broadcast(self, message: dict) -> None:
        await self._send_to(group_name(call_id=self.call_id), message)

    async def _send_to(self, group: str, message: dict) -> None:
        layer_message = {"type": SIGNAL_RELAY, "message": message, "sender_id": self.user_id}
        await layer_call("group_send", self.channel_layer.group_send(group, layer_message))

    # --- channel-layer handlers ---------------------------------------------------------------

    async def signal_relay(self, event: dict) -> None:
        if event["sender_id"] != self.user_id:  # never back to the sender (any of their sockets)
            await self.send_message(event["message"])

    async def call_ended(self, event: dict) -> None:
        self.call_over = True
        if self.closed:
            return
        await self.send_message(
            protocol.call_ended_message(call_id=self.call_id, reason=event["reason"], status=event["status"])
        )
        await self.leave()
        await self.close_socket(NORMAL.code, "The call has ended.")


class EventsConsumer(SocketConsumer):
    """A user's socket for call events: ``incoming_call``, ``call_accepted``, ``call_declined``,
    ``call_cancelled``, ``call_missed``, ``call_ended``. Clients send only ``ping``."""

    socket_kind = "events"
    slots = events_slots

    def subscriptions(self) -> list[str]:
        return [group_name(user_id=self.user_id)]

    async def call_event(self, event: dict) -> None:
        await self.send_message(event["event"])
