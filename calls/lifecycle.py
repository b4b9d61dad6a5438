"""The rules of a call's life, in one place: which transitions are legal and what each
action does to a call and its participants.

Everything here is pure: functions take a ``Call`` and its ``CallParticipant`` objects,
change them in memory and say what happened. Loading, locking and saving (to the database
or, while it is away, to the spool) is the services' job; views, admin actions and
commands reach these rules only through the services.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from calls.exceptions import InvalidTransition, NotAParticipant
from calls.models import Call, CallParticipant

Status = Call.Status
Reason = Call.EndReason
State = CallParticipant.State

# Legal moves of a call's status. Terminal statuses have none.
CALL_TRANSITIONS: dict[str, frozenset[str]] = {
    Status.RINGING: frozenset({Status.ACTIVE, Status.DECLINED, Status.CANCELLED, Status.MISSED, Status.FAILED}),
    Status.ACTIVE: frozenset({Status.ENDED, Status.FAILED}),
    Status.ENDED: frozenset(),
    Status.MISSED: frozenset(),
    Status.DECLINED: frozenset(),
    Status.CANCELLED: frozenset(),
    Status.FAILED: frozenset(),
}

# Legal moves of one participant's state.
PARTICIPANT_TRANSITIONS: dict[str, frozenset[str]] = {
    State.RINGING: frozenset({State.JOINED, State.DECLINED, State.MISSED}),
    State.JOINED: frozenset({State.LEFT}),
    State.DECLINED: frozenset(),
    State.MISSED: frozenset(),
    State.LEFT: frozenset({State.JOINED}),  # rejoining a call that is still going on
}

LIVE_STATUSES = frozenset({Status.RINGING, Status.ACTIVE})
TERMINAL_STATUSES = frozenset(status for status, moves in CALL_TRANSITIONS.items() if not moves)


@dataclass
class Outcome:
    """What an action did: ``changed`` is False for an idempotent repeat."""

    changed: bool
    call_ended: bool = False
    # participants whose phones were ringing and must stop (for events and pushes)
    stopped_ringing: list[CallParticipant] = field(default_factory=list)


def is_terminal(status: str) -> bool:
    return status in TERMINAL_STATUSES


def can_transition(current: str, target: str) -> bool:
    return target in CALL_TRANSITIONS.get(current, frozenset())


def check_transition(current: str, target: str) -> None:
    if not can_transition(current, target):
        raise InvalidTransition(
            f"A {current} call cannot become {target}.", details={"status": current, "target": target}
        )


def check_participant_transition(current: str, target: str) -> None:
    if target not in PARTICIPANT_TRANSITIONS.get(current, frozenset()):
        raise InvalidTransition(
            f"A participant who is {current} cannot become {target}.",
            details={"participant_state": current, "target": target},
        )


def talk_seconds(answered_at: datetime | None, ended_at: datetime | None) -> int:
    """Whole seconds of talk time, rounded down; 0 for a call never answered."""
    if answered_at is None or ended_at is None or ended_at <= answered_at:
        return 0
    return math.floor((ended_at - answered_at).total_seconds())


def participant_for(participants: Iterable[CallParticipant], user_id) -> CallParticipant:
    for participant in participants:
        if str(participant.user_id) == str(user_id):
            return participant
    raise NotAParticipant()


# Participant ids are derived from (call, user), the participant's natural key: the same write
# run twice (its first commit's answer lost, then journaled) makes the same rows.
PARTICIPANT_ID_NAMESPACE = uuid.UUID("6f1d3c2e-5b0a-4c61-9a57-2b1f0d6c8e41")


def participant_id(call_id, user_id) -> uuid.UUID:
    """The id of ``user_id``'s part in ``call_id``: the same for every run of the same write."""
    return uuid.uuid5(PARTICIPANT_ID_NAMESPACE, f"{uuid.UUID(str(call_id))}/{uuid.UUID(str(user_id))}")


def new_call(*, call_id, conversation_id, caller_id, callee_ids, call_type: str, at: datetime):
    """A ringing call with the caller joined and every callee ringing (not saved)."""
    call = Call(
        id=call_id,
        conversation_id=conversation_id,
        caller_id=caller_id,
        call_type=call_type,
        status=Status.RINGING,
        started_at=at,
        created_at=at,
        updated_at=at,
    )
    participants = [
        CallParticipant(
            id=participant_id(call_id, caller_id),
            call_id=call_id,
            user_id=caller_id,
            role=CallParticipant.Role.CALLER,
            state=State.JOINED,
            joined_at=at,
            is_video_on=call_type == Call.Type.VIDEO,
            call_started_at=at,
        )
    ]
    participants += [
        CallParticipant(
            id=participant_id(call_id, callee_id),
            call_id=call_id,
            user_id=callee_id,
            role=CallParticipant.Role.CALLEE,
            state=State.RINGING,
            is_video_on=call_type == Call.Type.VIDEO,
            call_started_at=at,
        )
        for callee_id in callee_ids
    ]
    return call, participants


def accept(call: Call, participants: list[CallParticipant], *, user_id, at: datetime) -> Outcome:
    """A ringing callee joins (or someone who left rejoins a call still going on); the first
    accept makes the call active. Repeats are no-ops."""
    participant = participant_for(participants, user_id)
    if participant.state == State.JOINED and call.status in LIVE_STATUSES:
        return Outcome(changed=False)
    if is_terminal(call.status):
        raise InvalidTransition("The call has already ended.", details={"status": call.status})
    check_participant_transition(participant.state, State.JOINED)
    participant.state = State.JOINED
    participant.joined_at = at
    if call.status == Status.RINGING:
        check_transition(call.status, Status.ACTIVE)
        call.status = Status.ACTIVE
        call.answered_at = at
    call.updated_at = at
    return Outcome(changed=True)


def decline(call: Call, participants: list[CallParticipant], *, user_id, at: datetime) -> Outcome:
    """A ringing callee declines; when nobody is left ringing or talking, the call is declined."""
    participant = participant_for(participants, user_id)
    if participant.state == State.DECLINED:
        return Outcome(changed=False)
    if is_terminal(call.status):
        raise InvalidTransition("The call has already ended.", details={"status": call.status})
    check_participant_transition(participant.state, State.DECLINED)
    participant.state = State.DECLINED
    participant.left_at = at
    call.updated_at = at
    callees = [p for p in participants if p.role == CallParticipant.Role.CALLEE]
    if call.status == Status.RINGING and all(p.state == State.DECLINED for p in callees):
        return _finish(call, participants, status=Status.DECLINED, reason=Reason.DECLINED, at=at)
    if call.status == Status.ACTIVE and not _call_can_go_on(participants):
        return _finish(call, participants, status=Status.ENDED, reason=Reason.HANGUP, at=at)
    return Outcome(changed=True)


def leave(call: Call, participants: list[CallParticipant], *, user_id, at: datetime) -> Outcome:
    """A joined participant leaves; the call ends when it can no longer go on."""
    participant = participant_for(participants, user_id)
    if participant.state == State.LEFT:
        return Outcome(changed=False)
    if is_terminal(call.status):
        raise InvalidTransition("The call has already ended.", details={"status": call.status})
    check_participant_transition(participant.state, State.LEFT)
    participant.state = State.LEFT
    participant.left_at = at
    call.updated_at = at
    if call.status == Status.RINGING and participant.role == CallParticipant.Role.CALLER:
        return _finish(call, participants, status=Status.CANCELLED, reason=Reason.CANCELLED, at=at)
    if not _call_can_go_on(participants):
        if call.status == Status.RINGING:
            return _finish(call, participants, status=Status.CANCELLED, reason=Reason.CANCELLED, at=at)
        return _finish(call, participants, status=Status.ENDED, reason=Reason.HANGUP, at=at)
    return Outcome(changed=True)


def end(call: Call, participants: list[CallParticipant], *, user_id, at: datetime, reason: str = "") -> Outcome:
    """Any participant ends the call for everyone. Ending an ended call changes nothing.

    Unanswered: the caller ending it cancels it, a callee ending it declines it.
    """
    participant = participant_for(participants, user_id)
    if is_terminal(call.status):
        return Outcome(changed=False)
    if call.status == Status.RINGING:
        if participant.role == CallParticipant.Role.CALLER:
            return _finish(call, participants, status=Status.CANCELLED, reason=Reason.CANCELLED, at=at)
        return _finish(call, participants, status=Status.DECLINED, reason=Reason.DECLINED, at=at)
    return _finish(call, participants, status=Status.ENDED, reason=reason or Reason.HANGUP, at=at)


def expire(call: Call, participants: list[CallParticipant], *, at: datetime) -> Outcome:
    """The ringing timeout: an unanswered call becomes missed."""
    if call.status != Status.RINGING:
        return Outcome(changed=False)
    return _finish(call, participants, status=Status.MISSED, reason=Reason.NO_ANSWER, at=at)


def fail(call: Call, participants: list[CallParticipant], *, at: datetime) -> Outcome:
    if is_terminal(call.status):
        return Outcome(changed=False)
    return _finish(call, participants, status=Status.FAILED, reason=Reason.FAILED, at=at)


def _call_can_go_on(participants: list[CallParticipant]) -> bool:
    """Two people are talking, or someone is still being rung."""
    joined = sum(1 for p in participants if p.state == State.JOINED)
    ringing = sum(1 for p in participants if p.state == State.RINGING)
    return joined >= 2 or (joined >= 1 and ringing >= 1)


def _finish(call: Call, participants: list[CallParticipant], *, status: str, reason: str, at: datetime) -> Outcome:
    check_transition(call.status, status)
    call.status = status
    call.end_reason = reason
    call.ended_at = at
    call.duration_seconds = talk_seconds(call.answered_at, at)
    call.updated_at = at
    stopped = []
    for participant in participants:
        if participant.state == State.RINGING:
            # Declined by all: nobody is ringing. Otherwise whoever still rang missed it.
            participant.state = State.MISSED
            participant.left_at = at
            stopped.append(participant)
        elif participant.state == State.JOINED:
            participant.state = State.LEFT
            participant.left_at = at
    return Outcome(changed=True, call_ended=True, stopped_ringing=stopped)
