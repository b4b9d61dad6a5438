"""Which call event sends which push to whom, and the listener that queues them.

- incoming_call: ``incoming_call`` to every ringing callee.
- call_accepted: ``call_cancelled`` (answered_elsewhere) to the user who answered, so their
  other devices stop ringing, and to any callee whose ringing the answer stopped.
- call_declined: ``call_cancelled`` (declined) to the user who declined (their other devices)
  and to any callee whose ringing stopped.
- call_cancelled: ``call_cancelled`` (cancelled) to the callees still ringing.
- call_missed: ``call_cancelled`` (missed), then ``missed_call``, to the callees still ringing.
- call_ended: ``call_ended`` to every participant but the one who ended it and the callees
  the call_cancelled / call_missed just before it already told.
- participant_left, media_changed: nothing (the apps in the call hear those on their socket).

Pushes for one call leave in this order (see ``push.worker``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

from django.db import DatabaseError

from calls import events
from calls.events import CallEvent, EventType
from push import notifications
from push.delivery import push_send
from push.notifications import CancelReason, PushKind
from push.provider_choice import build_provider, get_provider, install_provider
from push.selectors import user_display_name
from push.worker import get_worker

logger = logging.getLogger(__name__)

CALLER_NAME_FALLBACK = "SecureConnect"
# Terminal statuses whose own event (call_cancelled, call_missed) stopped the ringing callees.
ALREADY_TOLD_STATUSES = ("cancelled", "missed")


@dataclass(frozen=True)
class PlannedPush:
    kind: str
    user_ids: tuple[str, ...]
    reason: str = ""


def push_start() -> None:
    """Choose the push provider (which may stop start-up) and listen to call events.

    Called once, from AccountsConfig.ready().
    """
    install_provider(build_provider())
    events.subscribe(on_call_event)


def on_call_event(event: CallEvent) -> None:
    """Queue the pushes ``event`` calls for and return at once (a call-event listener)."""
    if not get_provider().enabled:
        return
    plan = push_plan(event)
    if plan:
        get_worker().submit(str(event.call.get("call_id")), partial(deliver_plan, event=event, plan=plan))


def push_plan(event: CallEvent) -> list[PlannedPush]:
    """The pushes an event calls for, in the order they must leave (pure: no I/O)."""
    call = event.call
    if event.type == EventType.INCOMING_CALL:
        plan = [PlannedPush(PushKind.INCOMING_CALL, event.ringing_ids)]
    elif event.type == EventType.CALL_ACCEPTED:
        users = _unique(event.actor_id, *event.stopped_ringing_ids)
        plan = [PlannedPush(PushKind.CALL_CANCELLED, users, CancelReason.ANSWERED_ELSEWHERE)]
    elif event.type == EventType.CALL_DECLINED:
        users = _unique(event.actor_id, *event.stopped_ringing_ids)
        plan = [PlannedPush(PushKind.CALL_CANCELLED, users, CancelReason.DECLINED)]
    elif event.type == EventType.CALL_CANCELLED:
        users = _unique(*event.stopped_ringing_ids) or _unanswered_callees(call)
        plan = [PlannedPush(PushKind.CALL_CANCELLED, users, CancelReason.CANCELLED)]
    elif event.type == EventType.CALL_MISSED:
        users = _unique(*event.stopped_ringing_ids) or _unanswered_callees(call)
        plan = [
            PlannedPush(PushKind.CALL_CANCELLED, users, CancelReason.MISSED),
            PlannedPush(PushKind.MISSED_CALL, users),
        ]
    elif event.type == EventType.CALL_ENDED:
        # call_ended follows every terminal event; after call_cancelled / call_missed the
        # callees that were ringing have had their push already.
        told = set(event.stopped_ringing_ids) if call.get("status") in ALREADY_TOLD_STATUSES else set()
        skip = told | {str(event.actor_id)}
        plan = [PlannedPush(PushKind.CALL_ENDED, tuple(u for u in _unique(*event.recipient_ids) if u not in skip))]
    else:
        plan = []
    return [planned for planned in plan if planned.user_ids]


def deliver_plan(*, event: CallEvent, plan: list[PlannedPush]) -> None:
    """Build and send each planned push (on a push worker thread); one failing does not stop the next."""
    call = event.call
    caller_name = ""
    if any(planned.kind in (PushKind.INCOMING_CALL, PushKind.MISSED_CALL) for planned in plan):
        caller_name = user_display_name(user_id=call.get("caller_id"), default=CALLER_NAME_FALLBACK)
    for planned in plan:
        try:
            push_send(user_ids=planned.user_ids, notification=_notification(planned, event, caller_name))
        except DatabaseError as exc:
            logger.warning(
                "Push %s for call %s not sent: database unavailable (%s)", planned.kind, call.get("call_id"), exc
            )
        except Exception:
            logger.exception("Push %s for call %s failed", planned.kind, call.get("call_id"))


def _notification(planned: PlannedPush, event: CallEvent, caller_name: str) -> notifications.PushNotification:
    if planned.kind == PushKind.INCOMING_CALL:
        return notifications.incoming_call(call=event.call, caller_name=caller_name, expires_at=event.ring_deadline)
    if planned.kind == PushKind.CALL_CANCELLED:
        return notifications.call_cancelled(call=event.call, reason=planned.reason)
    if planned.kind == PushKind.MISSED_CALL:
        return notifications.missed_call(call=event.call, caller_name=caller_name)
    return notifications.call_ended(call=event.call, ended_by=event.actor_id)


def _callees(call: dict, states: tuple[str, ...]) -> tuple[str, ...]:
    return _unique(
        *(p["user_id"] for p in call.get("participants", []) if p.get("role") == "callee" and p.get("state") in states)
    )


def _unanswered_callees(call: dict) -> tuple[str, ...]:
    # When a call ends unanswered, the callees still ringing become "missed".
    return _callees(call, ("ringing", "missed"))


def _unique(*user_ids) -> tuple[str, ...]:
    """Distinct user ids as strings, in first-seen order, without blanks."""
    return tuple(dict.fromkeys(str(user_id) for user_id in user_ids if user_id))
