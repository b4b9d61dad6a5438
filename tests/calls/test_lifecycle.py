"""The call state machine: every legal and illegal move, and how talk time is counted."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from calls import lifecycle
from calls.exceptions import InvalidTransition, NotAParticipant
from calls.models import Call, CallParticipant

pytestmark = pytest.mark.portable

Status = Call.Status
State = CallParticipant.State
T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
CALLER, ALICE, BOB = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def ringing_call(*callees):
    return lifecycle.new_call(
        call_id=uuid.uuid4(),
        conversation_id=uuid.uuid4(),
        caller_id=CALLER,
        callee_ids=list(callees or [ALICE]),
        call_type=Call.Type.VIDEO,
        at=T0,
    )


def state_of(participants, user_id):
    return lifecycle.participant_for(participants, user_id).state


ALL_STATUSES = [s.value for s in Status]
LEGAL = {
    (Status.RINGING, Status.ACTIVE),
    (Status.RINGING, Status.DECLINED),
    (Status.RINGING, Status.CANCELLED),
    (Status.RINGING, Status.MISSED),
    (Status.RINGING, Status.FAILED),
    (Status.ACTIVE, Status.ENDED),
    (Status.ACTIVE, Status.FAILED),
}


@pytest.mark.parametrize("current", ALL_STATUSES)
@pytest.mark.parametrize("target", ALL_STATUSES)
def test_transition_table_allows_exactly_the_legal_moves(current, target):
    expected = (current, target) in LEGAL
    assert lifecycle.can_transition(current, target) is expected
    if expected:
        lifecycle.check_transition(current, target)
    else:
        with pytest.raises(InvalidTransition):
            lifecycle.check_transition(current, target)


def test_terminal_statuses_are_exactly_those_without_moves():
    assert {
        Status.ENDED,
        Status.MISSED,
        Status.DECLINED,
        Status.CANCELLED,
        Status.FAILED,
    } == lifecycle.TERMINAL_STATUSES


def test_new_call_rings_every_callee_and_joins_the_caller():
    call, participants = ringing_call(ALICE, BOB)
    assert call.status == Status.RINGING and call.started_at == T0
    assert state_of(participants, CALLER) == State.JOINED
    assert state_of(participants, ALICE) == State.RINGING
    assert state_of(participants, BOB) == State.RINGING
    assert all(p.call_started_at == T0 for p in participants)


def test_participant_ids_follow_from_call_and_user_so_a_second_run_makes_the_same_rows():
    call_id = uuid.uuid4()

    def participant_ids():
        _call, participants = lifecycle.new_call(
            call_id=call_id,
            conversation_id=uuid.uuid4(),
            caller_id=CALLER,
            callee_ids=[ALICE],
            call_type="audio",
            at=T0,
        )
        return {p.user_id: p.id for p in participants}

    first = participant_ids()
    assert participant_ids() == first
    assert first[CALLER] == lifecycle.participant_id(str(call_id), str(CALLER).upper())  # spelling does not matter
    assert len(set(first.values())) == 2
    assert first[ALICE] != lifecycle.participant_id(uuid.uuid4(), ALICE)  # another call, another id


def test_first_accept_makes_the_call_active_and_sets_answered_at():
    call, participants = ringing_call(ALICE, BOB)
    outcome = lifecycle.accept(call, participants, user_id=ALICE, at=T0 + timedelta(seconds=4))
    assert outcome.changed
    assert call.status == Status.ACTIVE and call.answered_at == T0 + timedelta(seconds=4)
    lifecycle.accept(call, participants, user_id=BOB, at=T0 + timedelta(seconds=9))
    assert call.answered_at == T0 + timedelta(seconds=4), "a second callee does not move answered_at"


def test_second_accept_is_idempotent():
    call, participants = ringing_call()
    lifecycle.accept(call, participants, user_id=ALICE, at=T0 + timedelta(seconds=1))
    outcome = lifecycle.accept(call, participants, user_id=ALICE, at=T0 + timedelta(seconds=5))
    assert not outcome.changed
    assert lifecycle.participant_for(participants, ALICE).joined_at == T0 + timedelta(seconds=1)


def test_someone_who_left_can_rejoin_a_call_still_going_on():
    call, participants = ringing_call(ALICE, BOB)
    lifecycle.accept(call, participants, user_id=ALICE, at=T0 + timedelta(seconds=1))
    lifecycle.accept(call, participants, user_id=BOB, at=T0 + timedelta(seconds=1))
    lifecycle.leave(call, participants, user_id=BOB, at=T0 + timedelta(seconds=5))
    assert lifecycle.accept(call, participants, user_id=BOB, at=T0 + timedelta(seconds=9)).changed
    assert state_of(participants, BOB) == State.JOINED and call.answered_at == T0 + timedelta(seconds=1)


def test_accepting_an_ended_call_is_refused():
    call, participants = ringing_call()
    lifecycle.end(call, participants, user_id=CALLER, at=T0 + timedelta(seconds=2))
    with pytest.raises(InvalidTransition):
        lifecycle.accept(call, participants, user_id=ALICE, at=T0 + timedelta(seconds=3))


def test_a_stranger_cannot_act_on_the_call():
    call, participants = ringing_call()
    with pytest.raises(NotAParticipant):
        lifecycle.accept(call, participants, user_id=uuid.uuid4(), at=T0)


def test_declined_by_every_callee_ends_as_declined():
    call, participants = ringing_call(ALICE, BOB)
    lifecycle.decline(call, participants, user_id=ALICE, at=T0 + timedelta(seconds=1))
    assert call.status == Status.RINGING, "Bob is still ringing"
    outcome = lifecycle.decline(call, participants, user_id=BOB, at=T0 + timedelta(seconds=2))
    assert outcome.call_ended
    assert (call.status, call.end_reason, call.duration_seconds) == (Status.DECLINED, "declined", 0)
    assert call.ended_at == T0 + timedelta(seconds=2)
    assert state_of(participants, CALLER) == State.LEFT


def test_caller_cannot_decline_their_own_call():
    call, participants = ringing_call()
    with pytest.raises(InvalidTransition):
        lifecycle.decline(call, participants, user_id=CALLER, at=T0)


def test_leaving_leaves_one_person_so_the_call_ends_with_hangup():
    call, participants = ringing_call()
    lifecycle.accept(call, participants, user_id=ALICE, at=T0 + timedelta(seconds=2))
    outcome = lifecycle.leave(call, participants, user_id=ALICE, at=T0 + timedelta(seconds=62))
    assert outcome.call_ended
    assert (call.status, call.end_reason, call.duration_seconds) == (Status.ENDED, "hangup", 60)
    assert state_of(participants, CALLER) == State.LEFT


def test_leaving_a_group_call_keeps_it_going_while_two_remain():
    call, participants = ringing_call(ALICE, BOB)
    lifecycle.accept(call, participants, user_id=ALICE, at=T0 + timedelta(seconds=1))
    lifecycle.accept(call, participants, user_id=BOB, at=T0 + timedelta(seconds=1))
    lifecycle.leave(call, participants, user_id=CALLER, at=T0 + timedelta(seconds=5))
    assert call.status == Status.ACTIVE
    lifecycle.leave(call, participants, user_id=BOB, at=T0 + timedelta(seconds=8))
    assert call.status == Status.ENDED and call.duration_seconds == 7


def test_leaving_while_a_callee_still_rings_keeps_the_call():
    call, participants = ringing_call(ALICE, BOB)
    lifecycle.accept(call, participants, user_id=ALICE, at=T0 + timedelta(seconds=1))
    lifecycle.leave(call, participants, user_id=ALICE, at=T0 + timedelta(seconds=3))
    assert call.status == Status.ACTIVE, "the caller is still in and Bob still rings"


def test_caller_leaving_before_an_answer_cancels():
    call, participants = ringing_call()
    lifecycle.leave(call, participants, user_id=CALLER, at=T0 + timedelta(seconds=3))
    assert (call.status, call.end_reason) == (Status.CANCELLED, "cancelled")
    assert state_of(participants, ALICE) == State.MISSED


def test_ringing_callee_cannot_leave():
    call, participants = ringing_call()
    with pytest.raises(InvalidTransition):
        lifecycle.leave(call, participants, user_id=ALICE, at=T0)


def test_caller_ending_an_unanswered_call_cancels_it():
    call, participants = ringing_call()
    outcome = lifecycle.end(call, participants, user_id=CALLER, at=T0 + timedelta(seconds=10))
    assert (call.status, call.end_reason, call.duration_seconds) == (Status.CANCELLED, "cancelled", 0)
    assert [p.user_id for p in outcome.stopped_ringing] == [ALICE]


def test_callee_ending_an_unanswered_call_declines_it():
    call, participants = ringing_call()
    lifecycle.end(call, participants, user_id=ALICE, at=T0 + timedelta(seconds=10))
    assert (call.status, call.end_reason) == (Status.DECLINED, "declined")


def test_end_counts_talk_time_from_the_answer():
    call, participants = ringing_call()
    lifecycle.accept(call, participants, user_id=ALICE, at=T0 + timedelta(seconds=5))
    lifecycle.end(call, participants, user_id=ALICE, at=T0 + timedelta(seconds=95, milliseconds=900))
    assert call.duration_seconds == 90, "rounded down to whole seconds"
    assert call.ended_at == T0 + timedelta(seconds=95, milliseconds=900)


def test_ending_an_ended_call_changes_nothing():
    call, participants = ringing_call()
    lifecycle.accept(call, participants, user_id=ALICE, at=T0 + timedelta(seconds=5))
    lifecycle.end(call, participants, user_id=ALICE, at=T0 + timedelta(seconds=10))
    outcome = lifecycle.end(call, participants, user_id=CALLER, at=T0 + timedelta(seconds=50))
    assert not outcome.changed
    assert call.ended_at == T0 + timedelta(seconds=10) and call.duration_seconds == 5


def test_ringing_timeout_makes_the_call_missed():
    call, participants = ringing_call(ALICE, BOB)
    outcome = lifecycle.expire(call, participants, at=T0 + timedelta(seconds=60))
    assert (call.status, call.end_reason, call.duration_seconds) == (Status.MISSED, "no_answer", 0)
    assert {p.user_id for p in outcome.stopped_ringing} == {ALICE, BOB}
    assert state_of(participants, ALICE) == State.MISSED


def test_timeout_leaves_an_answered_call_alone():
    call, participants = ringing_call()
    lifecycle.accept(call, participants, user_id=ALICE, at=T0 + timedelta(seconds=5))
    assert not lifecycle.expire(call, participants, at=T0 + timedelta(seconds=60)).changed
    assert call.status == Status.ACTIVE


def test_ending_an_active_group_call_marks_the_still_ringing_callee_missed():
    call, participants = ringing_call(ALICE, BOB)
    lifecycle.accept(call, participants, user_id=ALICE, at=T0 + timedelta(seconds=5))
    lifecycle.end(call, participants, user_id=CALLER, at=T0 + timedelta(seconds=20))
    assert state_of(participants, BOB) == State.MISSED
    assert state_of(participants, ALICE) == State.LEFT


@pytest.mark.parametrize(
    ("answered", "ended", "expected"),
    [
        (None, T0, 0),
        (T0, None, 0),
        (T0, T0, 0),
        (T0, T0 - timedelta(seconds=5), 0),
        (T0, T0 + timedelta(seconds=59, microseconds=999999), 59),
        (T0, T0 + timedelta(hours=1, seconds=1), 3601),
    ],
)
def test_talk_seconds(answered, ended, expected):
    assert lifecycle.talk_seconds(answered, ended) == expected


@pytest.mark.parametrize(
    ("current", "target", "legal"),
    [
        (State.RINGING, State.JOINED, True),
        (State.RINGING, State.DECLINED, True),
        (State.RINGING, State.MISSED, True),
        (State.RINGING, State.LEFT, False),
        (State.JOINED, State.LEFT, True),
        (State.JOINED, State.DECLINED, False),
        (State.LEFT, State.JOINED, True),
        (State.LEFT, State.DECLINED, False),
        (State.DECLINED, State.JOINED, False),
        (State.MISSED, State.JOINED, False),
    ],
)
def test_participant_transitions(current, target, legal):
    if legal:
        lifecycle.check_participant_transition(current, target)
    else:
        with pytest.raises(InvalidTransition):
            lifecycle.check_participant_transition(current, target)
