"""Call events (``calls.events``) relayed to sockets: to each concerned user's events sockets,
and ``call_ended`` to every signaling socket of the call, which then closes.

``calls.events`` calls the listener after the write is durable (after commit), on whatever
thread did the write. The listener only hands the sends to an event loop and returns: it never
waits for Redis, and a failure is logged, never raised into the write's caller.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from channels.layers import get_channel_layer

from calls import events
from calls.events import CallEvent, EventType
from calls.lifecycle import LIVE_STATUSES
from calls.models import Call
from signaling.groups import group_name
from signaling.layers import group_send_in_order
from signaling.protocol import MessageType, call_event_message, presence_message

logger = logging.getLogger(__name__)

# What an events socket hears (participant_left and media_changed reach the call's own sockets
# as leave and mute messages instead).
USER_EVENT_TYPES = frozenset(
    {
        EventType.INCOMING_CALL,
        EventType.CALL_ACCEPTED,
        EventType.CALL_DECLINED,
        EventType.CALL_CANCELLED,
        EventType.CALL_MISSED,
        EventType.CALL_ENDED,
    }
)

# Channel-layer message types, handled by the consumers' methods of the same name (dots: underscores).
CALL_EVENT = "call.event"
LAYER_CALL_ENDED = "call.ended"
SIGNAL_RELAY = "signal.relay"
PARTICIPANT_REVOKED = "participant.revoked"
CONNECTION_LOST = Call.EndReason.CONNECTION_LOST

# Events after which the actor (or the callees who stopped ringing) may no longer signal: their
# open signaling sockets are closed (4403) and the others hear ``leave``.
REVOKING_EVENTS = frozenset({EventType.PARTICIPANT_LEFT, EventType.CALL_DECLINED, EventType.CALL_MISSED})


def event_deliveries(event: CallEvent) -> list[tuple[str, dict]]:
    """The (group, layer message) pairs an event calls for, in order (pure: no I/O)."""
    deliveries = []
    call = event.call
    reason = event.reason or call.get("end_reason") or ""
    if event.type in USER_EVENT_TYPES:
        message = call_event_message(event_type=event.type, call=call, actor_id=event.actor_id, reason=reason)
        for user_id in _concerned_users(event):
            deliveries.append((group_name(user_id=user_id), {"type": CALL_EVENT, "event": message}))
    if event.type in REVOKING_EVENTS:
        deliveries += _revocations(event)
    if event.type == EventType.CALL_ENDED:
        deliveries.append(
            (
                group_name(call_id=call["call_id"]),
                {
                    "type": LAYER_CALL_ENDED,
                    "reason": reason or call.get("status", ""),
                    "status": call.get("status", ""),
                },
            )
        )
    return deliveries


def _revocations(event: CallEvent) -> list[tuple[str, dict]]:
    """Close the open sockets of those who are no longer in a live call (each says ``leave`` as
    it goes). Someone whose connection was lost has no socket left to say it: the others hear
    ``leave`` (reason ``connection_lost``) from here."""
    call_id = event.call["call_id"]
    states = {p["user_id"]: p for p in event.call.get("participants", [])}
    gone = event.stopped_ringing_ids if event.type == EventType.CALL_MISSED else (event.actor_id,)
    live = event.call.get("status") in LIVE_STATUSES  # else call_ended closes every socket
    deliveries = []
    for user_id in dict.fromkeys(u for u in gone if u):
        participant = states.get(user_id, {})
        if live:
            revoked = {"type": PARTICIPANT_REVOKED, "state": participant.get("state", "")}
            deliveries.append((group_name(call_id=call_id, user_id=user_id), revoked))
        if participant.get("leave_reason") == CONNECTION_LOST:
            leave = presence_message(MessageType.LEAVE, call_id=call_id, user_id=user_id)
            leave["reason"] = CONNECTION_LOST
            deliveries.append(
                (group_name(call_id=call_id), {"type": SIGNAL_RELAY, "message": leave, "sender_id": user_id})
            )
    return deliveries


def _concerned_users(event: CallEvent) -> list[str]:
    if event.type == EventType.INCOMING_CALL:  # only the phones that should ring
        return list(event.ringing_ids)
    if event.type == EventType.CALL_MISSED and event.call.get("status") in LIVE_STATUSES:
        return list(dict.fromkeys(event.stopped_ringing_ids))  # the call goes on without them
    return list(dict.fromkeys(event.recipient_ids))


def on_call_event(event: CallEvent) -> None:
    """The ``calls.events`` listener: schedule the sends and return at once."""
    try:
        deliveries = event_deliveries(event)
        if deliveries:
            dispatcher.submit(deliveries)
    except Exception:
        logger.exception("Could not relay %s for call %s to sockets", event.type, event.call.get("call_id"))


class LayerDispatcher:
    """Sends channel-layer messages from any thread without blocking it, in submission order.

    The sends run on the event loop the consumers run on (the server's loop; recorded by each
    socket as it connects): the in-memory layer is only safe there, and the Redis layer reuses
    that loop's connections. Before any socket has connected (or after that loop closed, as in
    tests) a private loop thread stands in; no socket of this process can be listening then,
    but sockets of other processes can, through Redis. ``async_to_sync(group_send)`` would
    instead block the writing request for the Redis round trips (and a new loop each time).

    What is submitted while a drain is scheduled or running joins it: one wake-up of the loop
    for many events (of one write, and of the requests that wrote meanwhile), and their
    PUBLISHes leave together (``group_send_many``)."""

    def __init__(self):
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fallback: asyncio.AbstractEventLoop | None = None
        self._fallback_lock = threading.Lock()
        self._pending: list[tuple[str, dict]] = []
        self._pending_lock = threading.Lock()
        self._draining_on: asyncio.AbstractEventLoop | None = None  # the loop a drain is scheduled on

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def submit(self, deliveries: list[tuple[str, dict]]) -> None:
        with self._pending_lock:
            self._pending.extend(deliveries)
            loop = self._claim_drain()
        if loop is not None:
            self._start_drain(loop)

    def _claim_drain(self) -> asyncio.AbstractEventLoop | None:
        """Under the pending lock: the loop to start a drain on, or None when the drain under way
        takes what is pending."""
        draining = self._draining_on
        if draining is not None and draining.is_running() and not draining.is_closed():
            return None
        self._draining_on = self._target_loop()
        return self._draining_on

    def _start_drain(self, loop: asyncio.AbstractEventLoop) -> None:
        future = asyncio.run_coroutine_threadsafe(self._drain(), loop)
        future.add_done_callback(_log_failure)

    def _target_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None and loop.is_running() and not loop.is_closed():
            return loop
        with self._fallback_lock:
            if self._fallback is None or self._fallback.is_closed():
                self._fallback = asyncio.new_event_loop()
                threading.Thread(target=self._fallback.run_forever, name="signaling-events", daemon=True).start()
            return self._fallback

    async def _drain(self) -> None:
        """Send what is pending, batch after batch, until nothing is. When the sockets' loop has
        changed meanwhile (the first socket connected), the rest is handed to a drain there: the
        layer must not be used from two loops."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                handover = None
                with self._pending_lock:
                    if not self._pending:
                        self._draining_on = None
                        return
                    if self._target_loop() is not loop:
                        self._draining_on = None
                        handover = self._claim_drain()
                    else:
                        batch, self._pending = self._pending, []
                if handover is not None:
                    self._start_drain(handover)
                    return
                try:
                    failed = await group_send_in_order(get_channel_layer(), batch)
                except Exception:
                    logger.exception("Relaying %d call event messages failed", len(batch))
                    continue
                for (group, message), error in failed:
                    logger.warning(
                        "Channel layer unavailable (%s): %s for %s not delivered", error, message["type"], group
                    )
        except BaseException:  # cancelled with its loop: the next submission starts another drain
            with self._pending_lock:
                self._draining_on = None
            raise


def _log_failure(future) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("Relaying a call event failed", exc_info=future.exception())


dispatcher = LayerDispatcher()


def signaling_start() -> None:
    """Listen to call events and count channel-layer drops. Called once, from SignalingConfig.ready()."""
    from signaling.layers import install_drop_counter

    install_drop_counter()
    events.subscribe(on_call_event)
