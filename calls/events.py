"""Call events that other parts of the service react to (signaling sockets, push notifications).

Services publish an event for every change a client should hear about. Events go out only
after the write is durable: after the database transaction commits, or straight away when the
write went to the persistence spool. A write that rolls back notifies nobody.

Listeners subscribe once, from their app's ``AppConfig.ready()``. A listener must return
quickly (hand slow work to a thread or a channel layer) and must not raise; a listener that
does raise is logged and the others still run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, transaction

logger = logging.getLogger(__name__)


class EventType:
    INCOMING_CALL = "incoming_call"  # a call started: its callees should ring
    CALL_ACCEPTED = "call_accepted"  # a callee answered: their other devices stop ringing
    CALL_DECLINED = "call_declined"  # a callee declined (the call may go on for others)
    CALL_CANCELLED = "call_cancelled"  # the caller gave up before an answer
    CALL_MISSED = "call_missed"  # nobody answered before the ringing timeout
    CALL_ENDED = "call_ended"  # the call is over (sent with every terminal status)
    PARTICIPANT_LEFT = "participant_left"  # someone left, the call goes on
    MEDIA_CHANGED = "media_changed"  # a participant muted or unmuted audio or video


@dataclass(frozen=True)
class CallEvent:
    """``call`` is the call as the API shows it (``calls.representation.call_to_dict``), so a
    listener needs no database query. ``recipient_ids`` are the user ids concerned (every
    participant); ``stopped_ringing_ids`` are callees whose ringing this event stops."""

    type: str
    call: dict
    recipient_ids: tuple[str, ...]
    actor_id: str | None = None
    reason: str = ""
    stopped_ringing_ids: tuple[str, ...] = field(default_factory=tuple)
    # When the callees' ringing times out (``services.call_ring_deadline``), for listeners that
    # must not outlive it (an incoming-call push).
    ring_deadline: datetime | None = None

    @property
    def ringing_ids(self) -> tuple[str, ...]:
        """The callees still ringing after this event: the phones an incoming call rings. The one
        place that reads it from the call, so no listener re-derives it."""
        return tuple(
            str(p["user_id"])
            for p in self.call.get("participants", [])
            if p.get("role") == "callee" and p.get("state") == "ringing"
        )


Listener = Callable[[CallEvent], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def unsubscribe(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def publish_on_commit(*events: CallEvent) -> None:
    """Deliver after the current transaction commits (at once when there is none).

    Outside a transaction this must not touch the connection: in limited mode there is none."""
    in_transaction = connection.in_atomic_block
    for event in events:
        if in_transaction:
            transaction.on_commit(lambda event=event: dispatch(event), robust=True)
        else:
            dispatch(event)


def dispatch(event: CallEvent) -> None:
    for listener in list(_listeners):
        try:
            listener(event)
        except Exception:
            logger.exception(
                "Call event listener %r failed on %s for call %s", listener, event.type, event.call.get("call_id")
            )
