"""A call's timeline: the events a write adds, in order, within a bound (pure functions).

The services add events inside their mutations (``calls.services``), so the events are part of
the call's state that ``calls.persistence`` makes durable: written with the call to the
database, or journaled with it while the database is away and replayed later. Each event's id
is derived from its natural key (call, seq), and the state carries the whole timeline, so a
write replayed after its first commit landed converges to one row per event.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from calls import lifecycle
from calls.models import Call, CallParticipant, CallTimelineEvent

Kind = CallTimelineEvent.Kind
State = CallParticipant.State

# Events kept per call. Past MAX_EVENTS - 2 one ``truncated`` marker is recorded and later events
# are dropped, except ``ended``, which always has room: a timeline never grows past MAX_EVENTS
# and always says how the call ended.
MAX_EVENTS = 200

# The kinds a signaling socket reports (``calls.services.call_record_connection``).
CONNECTION_KINDS = frozenset({Kind.CONNECTED, Kind.RECONNECTING, Kind.RESUMED})

EVENT_ID_NAMESPACE = uuid.UUID("0b8c5f7e-3d2a-4e19-8c6b-7a5d1e9f2c30")


def event_id(call_id, seq: int) -> uuid.UUID:
    """The id of the ``seq``-th event of ``call_id``: the same for every run of the same write."""
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"{uuid.UUID(str(call_id))}/{seq}")


def append(
    timeline: list[CallTimelineEvent], *, call_id, kind: str, at: datetime, actor_id=None, detail: str = ""
) -> CallTimelineEvent | None:
    """Add one event at the end of ``timeline``; None when the bound (``MAX_EVENTS``) drops it.

    Nothing follows ``ended``."""
    if any(event.kind == Kind.ENDED for event in timeline):
        return None
    if kind != Kind.ENDED and len(timeline) >= MAX_EVENTS - 2:
        if any(event.kind == Kind.TRUNCATED for event in timeline):
            return None
        kind, actor_id, detail = Kind.TRUNCATED, None, ""
    seq = len(timeline)
    event = CallTimelineEvent(
        id=event_id(call_id, seq),
        call_id=call_id,
        seq=seq,
        at=at,
        kind=kind,
        actor_id=actor_id,
        detail=detail,
    )
    timeline.append(event)
    return event


@dataclass(frozen=True)
class Before:
    """What ``record_changes`` compares a write's result with."""

    status: str
    states: dict[str, str]


def before(call: Call, participants: list[CallParticipant]) -> Before:
    return Before(call.status, {str(p.user_id): p.state for p in participants})


def record_changes(
    timeline: list[CallTimelineEvent],
    call: Call,
    participants: list[CallParticipant],
    *,
    before: Before | None,
    actor_id=None,
    departures=(),
) -> None:
    """Add the events of what one write did, comparing the call with its state ``before`` the
    write (None: the call is new, so ``initiated`` then ``rang`` for each callee).

    Each participant's answer, decline, miss and rejoin is an event of theirs. Leaving is
    recorded only for ``departures`` (those whose own departure this write is: the participant
    hanging up, or whose connection was lost); whoever a call's end takes out with it is told
    by ``ended``, whose actor is ``actor_id`` (None: the service's own decision, such as the
    ringing timeout)."""
    if before is None:
        append(
            timeline,
            call_id=call.id,
            kind=Kind.INITIATED,
            at=call.started_at,
            actor_id=call.caller_id,
            detail=call.call_type,
        )
        for participant in participants:
            if participant.role == CallParticipant.Role.CALLEE:
                append(timeline, call_id=call.id, kind=Kind.RANG, at=call.started_at, actor_id=participant.user_id)
        before = Before(lifecycle.Status.RINGING, {str(p.user_id): p.state for p in participants})
    departed = {str(user_id) for user_id in departures}
    changes = []
    for participant in participants:
        user = str(participant.user_id)
        old, new = before.states.get(user), participant.state
        if old == new:
            continue
        if new == State.JOINED:
            changes.append((participant.joined_at, Kind.REJOINED if old == State.LEFT else Kind.ACCEPTED, user, ""))
        elif new in (State.DECLINED, State.MISSED):
            changes.append((participant.left_at, Kind(new), user, ""))
        elif new == State.LEFT and user in departed:
            lost = participant.leave_reason == Call.EndReason.CONNECTION_LOST
            kind = Kind.CONNECTION_LOST if lost else Kind.LEFT
            changes.append((participant.left_at, kind, user, participant.leave_reason))
    far_past = datetime.min.replace(tzinfo=UTC)
    for at, kind, user, detail in sorted(changes, key=lambda change: (change[0] or far_past, change[2])):
        append(timeline, call_id=call.id, kind=kind, at=at or call.updated_at, actor_id=user, detail=detail)
    if not lifecycle.is_terminal(before.status) and lifecycle.is_terminal(call.status):
        append(
            timeline,
            call_id=call.id,
            kind=Kind.ENDED,
            at=call.ended_at or call.updated_at,
            actor_id=actor_id,
            detail=call.end_reason,
        )
