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
from datetime import datetime, timedelta

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
    participant.left_at = None
    participant.leave_reason = ""
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
        return _end_for_lack_of_talk(call, participants, at=at, now=at)
    return Outcome(changed=True)


def leave(call: Call, participants: list[CallParticipant], *, user_id, at: datetime) -> Outcome:
    """A joined participant leaves (hangs up); the call ends when it can no longer go on."""
    return _depart(call, participants, user_id=user_id, at=at, now=at, reason=Reason.HANGUP)


def connection_lost(
    call: Call, participants: list[CallParticipant], *, user_id, dropped_at: datetime, now: datetime
) -> Outcome:
    """A joined participant's sockets went and did not come back within the grace.

    They leave as of ``dropped_at`` (when they were last seen alive), not as of ``now`` (when the
    grace ran out), so talk time is what really happened. Already gone: nothing changes."""
    participant = participant_for(participants, user_id)
    if participant.state != State.JOINED or is_terminal(call.status):
        return Outcome(changed=False)
    at = max(t for t in (dropped_at, participant.joined_at, call.answered_at, call.started_at) if t is not None)
    return _depart(call, participants, user_id=user_id, at=min(at, now), now=now, reason=Reason.CONNECTION_LOST)


def _depart(call, participants, *, user_id, at: datetime, now: datetime, reason: str) -> Outcome:
    participant = participant_for(participants, user_id)
    if participant.state == State.LEFT:
        return Outcome(changed=False)
    if is_terminal(call.status):
        raise InvalidTransition("The call has already ended.", details={"status": call.status})
    check_participant_transition(participant.state, State.LEFT)
    participant.state = State.LEFT
    participant.left_at = at
    participant.leave_reason = reason
    call.updated_at = now
    if call.status == Status.RINGING and participant.role == CallParticipant.Role.CALLER:
        return _finish(call, participants, status=Status.CANCELLED, reason=Reason.CANCELLED, at=at, now=now)
    if not _call_can_go_on(participants):
        if call.status == Status.RINGING:
            return _finish(call, participants, status=Status.CANCELLED, reason=Reason.CANCELLED, at=at, now=now)
        return _end_for_lack_of_talk(call, participants, at=at, now=now)
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


def ring_deadline(call: Call, ring_timeout: float) -> datetime:
    """When the callees of ``call`` stop ringing: every callee starts ringing as the call starts."""
    return call.started_at + timedelta(seconds=ring_timeout)


def ring_timeout(call: Call, participants: list[CallParticipant], *, deadline: datetime, now: datetime) -> Outcome:
    """Ringing per participant: each callee still ringing at ``deadline`` has missed the call,
    whatever the call's status (their devices stop ringing). Then, if the call can no longer go
    on, it ends: ``missed`` if nobody ever answered, otherwise ``ended`` with the reason of the
    departure that left nobody to talk to."""
    if is_terminal(call.status) or now < deadline:
        return Outcome(changed=False)
    stopped = [p for p in participants if p.state == State.RINGING]
    if not stopped:
        return Outcome(changed=False)
    if call.status == Status.RINGING:
        return _finish(call, participants, status=Status.MISSED, reason=Reason.NO_ANSWER, at=deadline, now=now)
    for participant in stopped:
        participant.state = State.MISSED
        participant.left_at = deadline
    call.updated_at = now
    if _call_can_go_on(participants):
        return Outcome(changed=True, stopped_ringing=stopped)
    outcome = _end_for_lack_of_talk(call, participants, at=deadline, now=now)
    outcome.stopped_ringing = stopped + outcome.stopped_ringing
    return outcome


def expire(call: Call, participants: list[CallParticipant], *, at: datetime) -> Outcome:
    """The ringing timeout of an unanswered call: it becomes missed."""
    if call.status != Status.RINGING:
        return Outcome(changed=False)
    return _finish(call, participants, status=Status.MISSED, reason=Reason.NO_ANSWER, at=at)


def _call_can_go_on(participants: list[CallParticipant]) -> bool:
    """Two people are talking, or someone is still being rung (for at most the ring timeout)."""
    joined = sum(1 for p in participants if p.state == State.JOINED)
    ringing = sum(1 for p in participants if p.state == State.RINGING)
    return joined >= 2 or (joined >= 1 and ringing >= 1)


def _end_for_lack_of_talk(call: Call, participants: list[CallParticipant], *, at: datetime, now: datetime) -> Outcome:
    """An answered call with fewer than two people left: it ended when the last of those who had
    talked departed (their reason is the call's), or at ``at`` when nobody had."""
    departed = [p for p in participants if p.leave_reason and p.left_at is not None]
    if departed:
        last = max(departed, key=lambda p: p.left_at)
        return _finish(call, participants, status=Status.ENDED, reason=last.leave_reason, at=last.left_at, now=now)
    return _finish(call, participants, status=Status.ENDED, reason=Reason.HANGUP, at=at, now=now)


def _finish(
    call: Call,
    participants: list[CallParticipant],
    *,
    status: str,
    reason: str,
    at: datetime,
    now: datetime | None = None,
) -> Outcome:
    """End the call as of ``at``; ``now`` (default ``at``) is when this was decided and written."""
    check_transition(call.status, status)
    call.status = status
    call.end_reason = reason
    call.ended_at = at
    call.duration_seconds = talk_seconds(call.answered_at, at)
    call.updated_at = now or at
    stopped = []
    for participant in participants:
        if participant.state == State.RINGING:
            # Declined by all: nobody is ringing. Otherwise whoever still rang missed it.
            participant.state = State.MISSED
            participant.left_at = at
            stopped.append(participant)
        elif participant.state == State.JOINED:
            participant.state = State.LEFT
            participant.left_at = max(at, participant.joined_at) if participant.joined_at else at
            if status == Status.ENDED:
                participant.leave_reason = reason
    return Outcome(changed=True, call_ended=True, stopped_ringing=stopped)
