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
import itertools
import logging
import time
import uuid

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull, StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch
from django.conf import settings
from django.db import DatabaseError

from calls import presence
from calls.exceptions import CallError
from calls.services import call_record_connection, call_set_media
from signaling import metrics, protocol
from signaling.authentication import (
    accepted_subprotocol,
    call_id_from_query,
    origin_check,
    query_params,
    socket_authenticate_off_loop,
)
from signaling.call_events import SIGNAL_RELAY, dispatcher
from signaling.groups import group_name
from signaling.layers import LAYER_ERRORS, LayerUnavailable, layer_call, report_layer_failure
from signaling.limits import ConnectionSlots, TokenBucket, events_slots, signaling_slots
from signaling.participation import participation_check
from signaling.protocol import (
    FORBIDDEN,
    NORMAL,
    PING_TIMEOUT_DISCONNECT,
    POLICY_VIOLATION,
    REFUSABLE_ERRORS,
    SERVER_ERROR,
    TOO_MANY_CONNECTIONS,
    UNAUTHENTICATED,
    ErrorCode,
    MessageType,
    ProtocolError,
    Refused,
    refusal_for,
)
from signaling.registry import registry
from signaling.resume import RESUME_REQUEST, RESUME_WAIT, ResumeHolder

logger = logging.getLogger(__name__)

# A client that keeps sending frames the schema refuses is closed: 20 at once, then 1 a second.
INVALID_MESSAGE_BURST = 20
INVALID_MESSAGE_RATE = 1.0
MAX_CLOSE_REASON_BYTES = 123  # RFC 6455
MAX_HOLDERS_ASKED = 3  # holders a resumed socket asks for the messages of its gap

# Relayed messages carry an id on the channel layer (never on the wire), so a resumed socket can
# tell a message it got from the holder from the same message arriving live.
_PROCESS_TOKEN = uuid.uuid4().hex[:12]
_message_ids = itertools.count()


def next_message_id() -> str:
    return f"{_PROCESS_TOKEN}.{next(_message_ids)}"


class SocketConsumer(AsyncWebsocketConsumer):
    """What both endpoints share: the handshake checks, the per-process and per-user caps, rate
    limits, sessions that end (token expiry, logout, disabled account: ``signaling.registry``),
    surviving an unreachable channel layer, and releasing everything whatever a handler raises.

    Application silence closes nothing: keepalive is the server's WebSocket pings
    (WS_PING_INTERVAL, WS_PING_TIMEOUT). Application ``ping`` is answered for browsers."""

    socket_kind = ""
    slots: ConnectionSlots
    per_user_setting = ""
    allowed_types: frozenset[str] = frozenset({MessageType.PING})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.user_id: str | None = None
        self.jti: str | None = None
        self.family: str | None = None  # the token's session (``fam``), revoked as a whole by logout
        self.token_expires_at: float | None = None  # epoch seconds
        self.accepted = False  # the handshake was accepted (refusals accept it too)
        self.joined = False  # the socket passed every check and is in its groups
        self.closed = False
        self.left = False
        self.slot_taken = False
        self.user_slot_taken = False
        self.joined_groups: list[str] = []
        self.layer_down = False
        # Made at the first frame (and the first invalid one): a bucket starts full either way, and
        # most sockets (events) never send one.
        self.rate: TokenBucket | None = None
        self.invalid: TokenBucket | None = None

    # --- plumbing: the channel layer may fail; that closes this socket, not the process ------

    async def __call__(self, scope, receive, send):
        """``AsyncConsumer.__call__`` with one change: a failing channel-layer receive (Redis
        away) becomes a ``layer.failed`` message that closes the socket with 4503, instead of an
        exception that kills the consumer with no reason given."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.base_send = send
        try:
            with contextlib.suppress(StopConsumer):
                if hasattr(self.channel_layer, "receive_ready"):
                    await self._dispatch_from(receive)
                else:
                    await await_many_dispatch([receive, self._receive_from_layer], self.dispatch)
        finally:
            await self.stopped()

    async def _dispatch_from(self, receive) -> None:
        """``await_many_dispatch`` for a layer that can say when a channel is ready
        (``PubSubChannelLayer``): one task waits for the server's next event, and the socket's
        channel is read only once it holds a message. Channels' version keeps a second task
        reading the channel and an ``asyncio.wait`` per socket (~2 KiB of an idle socket), and
        pops a message that a closing socket then never dispatches; here it stays in the
        channel for the resume holder."""
        loop = asyncio.get_running_loop()
        layer, channel = self.channel_layer, self.channel_name
        from_server = loop.create_task(receive())
        try:
            while True:
                ready = None if self.layer_down else layer.receive_ready(channel)
                if not from_server.done() and (ready is None or not ready.done()):
                    woken = loop.create_future()

                    def wake(_, woken=woken):
                        if not woken.done():
                            woken.set_result(None)

                    from_server.add_done_callback(wake)
                    if ready is not None:
                        ready.add_done_callback(wake)
                    try:
                        await woken
                    finally:
                        from_server.remove_done_callback(wake)
                        if ready is not None:
                            ready.remove_done_callback(wake)
                if from_server.done():
                    event, from_server = from_server.result(), None
                    await self.dispatch(event)
                    from_server = loop.create_task(receive())
                elif ready is not None and ready.done():
                    await self.dispatch(self._receive_from_layer_nowait())
        finally:
            if from_server is not None:
                from_server.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await from_server
            layer.receive_abandoned(channel)

    async def stopped(self) -> None:
        """After the consumer stopped reading its channel (a holder may take it over)."""

    async def _receive_from_layer(self) -> dict:
        if self.layer_down:  # reported once; then wait for the disconnect
            await asyncio.Event().wait()
        try:
            return await self.channel_layer.receive(self.channel_name)
        except LAYER_ERRORS as exc:
            self.layer_down = True
            report_layer_failure("receive", exc)
            return {"type": "layer.failed"}

    def _receive_from_layer_nowait(self) -> dict:
        try:
            return self.channel_layer.receive_nowait(self.channel_name)
        except LAYER_ERRORS as exc:
            self.layer_down = True
            report_layer_failure("receive", exc)
            return {"type": "layer.failed"}

    async def dispatch(self, message):
        # Channels' dispatch hops to a thread before every message to close stale database
        # connections; the handlers here reach the database only through
        # database_sync_to_async, which does that itself, so relaying stays on the loop.
        handler = getattr(self, get_handler_name(message), None)
        try:
            if handler is None:
                raise ValueError(f"No handler for message type {message['type']}")
            await handler(message)
        except StopConsumer:
            raise
        except Exception:
            await self.failed(message)
            raise StopConsumer() from None

    async def failed(self, message) -> None:
        """A handler raised: log and count it, tell the client (1011), and release the socket's
        slot, presence and groups as a disconnect would."""
        logger.exception(
            "%s socket handler failed on %s (user %s)", self.socket_kind, message.get("type"), self.user_id
        )
        metrics.handler_failures.labels(socket=self.socket_kind).inc()
        with contextlib.suppress(Exception):
            if not self.closed and self.accepted:
                await self.send_message(
                    protocol.error_message(SERVER_ERROR.error, "Server error; reconnect.", close_code=1011)
                )
            if not self.closed:
                self.closed = True
                await self.close(code=SERVER_ERROR.code)
        with contextlib.suppress(Exception):
            await self.leave(code=SERVER_ERROR.code)
        self.release()

    def release(self) -> None:
        registry.unregister(self)
        if self.slot_taken:
            self.slots.release()
            self.slot_taken = False
        if self.user_slot_taken:
            registry.release_user_slot(self.socket_kind, self.user_id)
            self.user_slot_taken = False

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
            claims = await socket_authenticate_off_loop(self.scope)
            self.user_id, self.jti, self.family = str(claims.user_id), str(claims.jti), claims.family
            self.token_expires_at = claims.expires_at.timestamp()
            limit = getattr(settings, self.per_user_setting)
            if not registry.take_user_slot(self.socket_kind, self.user_id, limit):
                raise Refused(
                    TOO_MANY_CONNECTIONS,
                    f"You have {limit} {self.socket_kind} sockets open on this server (the most allowed);"
                    " close one first.",
                )
            self.user_slot_taken = True
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
        registry.register(self)
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

    async def leaving(self, *, code: int | None) -> None:
        """Once, when the socket goes (closed by either side, with ``code``)."""

    def presence_entry(self) -> tuple[str, str, str] | None:
        """``(call_id, user_id, channel)`` for sockets whose presence the registry renews."""
        return None

    # --- frames ---------------------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if self.closed or not self.joined:
            return
        if self.rate is None:
            self.rate = TokenBucket(rate=settings.WS_RATE_LIMIT, burst=settings.WS_RATE_BURST)
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
            if self.invalid is None:
                self.invalid = TokenBucket(rate=INVALID_MESSAGE_RATE, burst=INVALID_MESSAGE_BURST)
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
        """The server ends an open socket: what any drop does (``leaving``: the peers hear it
        now), then say why and close."""
        if self.closed:
            return
        await self.leave(code=refusal.close.code)
        await self.refuse(refusal)

    async def session_refused(self, error: Exception, *, disabled: bool = False) -> None:
        """The registry found this socket's session over (token expired, revoked, account
        disabled): the socket ends it from its own dispatch loop, one message at a time."""
        close = FORBIDDEN if disabled else UNAUTHENTICATED
        with contextlib.suppress(*LAYER_ERRORS):
            await self.channel_layer.send(
                self.channel_name, {"type": "session.over", "code": close.code, "message": str(error)}
            )

    async def session_over(self, event: dict) -> None:
        close = FORBIDDEN if event["code"] == FORBIDDEN.code else UNAUTHENTICATED
        await self.end(Refused(close, event["message"]))

    async def close_socket(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        encoded = reason.encode("utf-8")[:MAX_CLOSE_REASON_BYTES]
        await self.close(code=code, reason=encoded.decode("utf-8", "ignore"))

    async def leave(self, *, code: int | None) -> None:
        """Idempotent: tell whoever must know (``leaving``), leave the groups."""
        if self.left:
            return
        self.left = True
        registry.unregister(self)
        if self.joined and not self.layer_down:
            with contextlib.suppress(LayerUnavailable):
                await self.leaving(code=code)
        for group in self.joined_groups:
            with contextlib.suppress(LayerUnavailable):
                await layer_call("group_discard", self.channel_layer.group_discard(group, self.channel_name))
        self.joined_groups = []

    async def websocket_disconnect(self, message):
        self.closed = True
        try:
            await self.leave(code=message.get("code"))
        finally:
            self.release()
        raise StopConsumer()

    async def refresh_groups(self) -> None:
        """Group memberships expire in Redis after a day (channels_redis group_expiry)."""
        for group in self.joined_groups:
            with contextlib.suppress(LayerUnavailable):
                await layer_call("group_add", self.channel_layer.group_add(group, self.channel_name))


class SignalingConsumer(SocketConsumer):
    """One participant's socket in one call. See docs/signaling.md for the protocol, presence,
    grace and resume."""

    socket_kind = "signaling"
    slots = signaling_slots
    per_user_setting = "WS_MAX_SIGNALING_PER_USER"
    allowed_types = frozenset(protocol.CLIENT_MESSAGES)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.call_id: str | None = None
        self.participation = None
        self.call_over = False
        self.revoked = False  # no longer in the call (declined, left, missed): no grace
        self.holder: ResumeHolder | None = None
        self.dropped_at: float | None = None
        # a resume in progress: holders not yet answered, messages that arrived live meanwhile
        self.pending_holders: set[str] = set()
        self.live_during_resume: list[dict] = []
        self.delivered_ids: set[str] = set()
        self.resume_dropped = 0
        self.resume_timer: asyncio.Task | None = None

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

    def presence_entry(self) -> tuple[str, str, str] | None:
        return (self.call_id, self.user_id, self.channel_name) if not self.left else None

    async def opened(self) -> None:
        """Register in presence, tell the others (``join``, or ``participant_resumed`` within the
        grace), then tell the newcomer who is here.

        Registering before looking means two sockets connecting at once each learn of the other
        at least once (by ``participants`` or ``join``). Sending ``participants`` last means that
        once a client has it, its ``join`` is out: a socket that connects after that point
        learns of it from ``participants`` only."""
        now = time.time()
        try:
            before = await sync_to_async(presence.presence_socket_opened, thread_sensitive=False)(
                call_id=self.call_id, user_id=self.user_id, channel_name=self.channel_name, now=now
            )
        except presence.PresenceUnavailable as exc:
            raise LayerUnavailable() from exc
        mine = before.of(self.user_id)
        resuming = bool(mine.holders) or (
            not mine.connected and mine.last_seen is not None and now - mine.last_seen < settings.CALL_RECONNECT_GRACE
        )
        if resuming:
            await self._start_resume(mine.holders)
        kind = MessageType.PARTICIPANT_RESUMED if resuming else MessageType.JOIN
        await self._broadcast(protocol.presence_message(kind, call_id=self.call_id, user_id=self.user_id))
        others = [p for p in self.participant_ids() if p != self.user_id]
        connected = [p for p in others if before.of(p).connected]
        await self.send_message(protocol.participants_message(call_id=self.call_id, connected_ids=connected))
        if resuming or not mine.connected:  # a second device of someone already here adds nothing
            await database_sync_to_async(call_record_connection)(
                call_id=self.call_id, user_id=self.user_id, kind="resumed" if resuming else "connected", at=now
            )

    async def leaving(self, *, code: int | None) -> None:
        """A socket that the server closed because its participant is out (or the call is over)
        goes for good. Any other drop starts the grace: unless another socket of the same user is
        still here, the others hear ``participant_reconnecting`` and a holder keeps this socket's
        messages until a resume or the end of the grace."""
        if self.revoked:
            leave = protocol.presence_message(MessageType.LEAVE, call_id=self.call_id, user_id=self.user_id)
            await self._broadcast(leave)
        if self.revoked or self.call_over:
            with contextlib.suppress(presence.PresenceUnavailable):
                await sync_to_async(presence.presence_socket_closed_for_good, thread_sensitive=False)(
                    call_id=self.call_id, user_id=self.user_id, channel_name=self.channel_name
                )
            return
        # Last seen alive: now, or for a peer whose pongs stopped, when the unanswered ping went out.
        # The grace to come back runs from now either way (a phone that changed networks is often
        # back by the time its old socket is found dead).
        now = time.time()
        at = now - (settings.WS_PING_TIMEOUT if code == PING_TIMEOUT_DISCONNECT else 0)
        until = None if code == SERVER_ERROR.code else now + settings.CALL_RECONNECT_GRACE  # a failure holds nothing
        try:
            others_here = await sync_to_async(self._drop, thread_sensitive=False)(at=at, until=until)
        except presence.PresenceUnavailable:
            others_here = False
        if others_here or until is None:
            return
        reconnecting = protocol.presence_message(
            MessageType.PARTICIPANT_RECONNECTING, call_id=self.call_id, user_id=self.user_id
        )
        await self._broadcast(reconnecting)
        self.holder = ResumeHolder(
            channel_layer=self.channel_layer,
            channel_name=self.channel_name,
            groups=list(self.joined_groups),
            call_id=self.call_id,
            user_id=self.user_id,
            until=until,
        )
        self.joined_groups = []  # the holder keeps them until it goes
        self.dropped_at = at  # on the timeline once the holder has taken over (``stopped``)

    def _drop(self, *, at: float, until: float | None) -> bool:
        """Record the drop (with a hold until ``until``); True, and no hold, when another socket of
        the user is live."""
        presence.presence_socket_dropped(
            call_id=self.call_id, user_id=self.user_id, channel_name=self.channel_name, at=at, hold_until=until
        )
        if presence.presence_of_calls([self.call_id])[self.call_id].of(self.user_id).connected:
            presence.presence_hold_released(call_id=self.call_id, user_id=self.user_id, channel_name=self.channel_name)
            return True
        return False

    async def stopped(self) -> None:
        if self.holder is not None:
            registry.keep_holder(asyncio.get_running_loop().create_task(self.holder.run(), name="resume-holder"))
            self.holder = None
            # After the holder runs: a database write before it would keep the socket's messages
            # from it (a resume on another instance would then wait for them in vain).
            await database_sync_to_async(call_record_connection)(
                call_id=self.call_id, user_id=self.user_id, kind="reconnecting", at=self.dropped_at
            )

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
        """To the other participants, never back to the sender: in a two-party call, to the other
        one's group only (the call's participants are fixed when it is initiated), so the sender's
        own sockets are not handed a message to drop; otherwise to the call's group."""
        others = [p for p in self.participant_ids() if p != self.user_id]
        if len(others) == 1:
            await self._send_to(group_name(call_id=self.call_id, user_id=others[0]), message)
        else:
            await self._send_to(group_name(call_id=self.call_id), message)

    async def _send_to(self, group: str, message: dict) -> None:
        layer_message = {"type": SIGNAL_RELAY, "message": message, "sender_id": self.user_id, "id": next_message_id()}
        await layer_call("group_send", self.channel_layer.group_send(group, layer_message))

    # --- resume -------------------------------------------------------------------------------

    async def _start_resume(self, holders: list[str]) -> None:
        """Ask the holders of this user's gap (the most recent few: a client that reconnects in a
        loop must not make each new socket message every old one) for what they kept."""
        self.pending_holders = set()
        for holder in holders[:MAX_HOLDERS_ASKED]:
            try:
                await self.channel_layer.send(holder, {"type": RESUME_REQUEST, "reply_to": self.channel_name})
            except (*LAYER_ERRORS, ChannelFull):
                continue  # a holder that cannot be reached holds nothing for us
            self.pending_holders.add(holder)
        if self.pending_holders:
            self.resume_timer = asyncio.get_running_loop().create_task(self._resume_deadline())
        else:  # the instance that held the gap is gone: what it held is lost, the client renegotiates
            await self.send_message(protocol.resume_incomplete_message(call_id=self.call_id, dropped=0))

    async def _resume_deadline(self) -> None:
        """A holder that does not answer (its instance died meanwhile) is not waited for long."""
        await asyncio.sleep(RESUME_WAIT)
        with contextlib.suppress(*LAYER_ERRORS, ChannelFull):
            await self.channel_layer.send(self.channel_name, {"type": "resume.timeout"})

    async def resume_timeout(self, event: dict) -> None:
        if self.pending_holders:
            self.pending_holders.clear()
            await self._finish_resume(incomplete=True)

    async def resume_batch(self, event: dict) -> None:
        if event.get("holder") not in self.pending_holders:
            return
        for held in event["messages"]:
            if held.get("id") not in self.delivered_ids:
                self.delivered_ids.add(held.get("id"))
                await self.send_message(held["message"])
        self.resume_dropped += event.get("dropped", 0)
        if event.get("final"):
            self.pending_holders.discard(event["holder"])
            if not self.pending_holders:
                await self._finish_resume(incomplete=False)

    async def _finish_resume(self, *, incomplete: bool) -> None:
        if self.resume_timer is not None:
            self.resume_timer.cancel()
            self.resume_timer = None
        live, self.live_during_resume = self.live_during_resume, []
        for event in live:
            if event.get("id") not in self.delivered_ids:
                await self.send_message(event["message"])
        self.delivered_ids = set()
        if incomplete or self.resume_dropped:
            await self.send_message(
                protocol.resume_incomplete_message(call_id=self.call_id, dropped=self.resume_dropped)
            )

    # --- channel-layer handlers ---------------------------------------------------------------

    async def signal_relay(self, event: dict) -> None:
        if event["sender_id"] == self.user_id:  # never back to the sender (any of their sockets)
            return
        if self.holder is not None:  # closing, not yet stopped: the holder takes it
            self.holder.hold(event)
            return
        if self.pending_holders:
            self.live_during_resume.append(event)
            return
        await self.send_message(event["message"])

    async def resume_request(self, event: dict) -> None:
        """A new socket of this user asks for the messages of the gap while this socket is still
        closing (its holder has not started): hand over what is held now; the new socket, in the
        groups already, gets the rest live. Not closing: nothing was held."""
        holder = self.holder or ResumeHolder(
            channel_layer=self.channel_layer,
            channel_name=self.channel_name,
            groups=[],
            call_id=self.call_id,
            user_id=self.user_id,
            until=0,
        )
        await holder.hand_over(event["reply_to"])
        if self.holder is not None:
            self.holder.handed_over = True

    async def participant_revoked(self, event: dict) -> None:
        """This user declined, left or missed the call: this socket may no longer exist."""
        self.revoked = True
        state = event.get("state") or "left"
        await self.end(Refused(FORBIDDEN, f"You can no longer signal in this call (you {state})."))

    async def call_ended(self, event: dict) -> None:
        self.call_over = True
        if self.closed:
            return
        await self.send_message(
            protocol.call_ended_message(call_id=self.call_id, reason=event["reason"], status=event["status"])
        )
        await self.leave(code=NORMAL.code)
        await self.close_socket(NORMAL.code, "The call has ended.")


class EventsConsumer(SocketConsumer):
    """A user's socket for call events: ``incoming_call``, ``call_accepted``, ``call_declined``,
    ``call_cancelled``, ``call_missed``, ``call_ended``. Clients send only ``ping``."""

    socket_kind = "events"
    slots = events_slots
    per_user_setting = "WS_MAX_EVENTS_PER_USER"

    def subscriptions(self) -> list[str]:
        return [group_name(user_id=self.user_id)]

    async def call_event(self, event: dict) -> None:
        await self.send_message(event["event"])
