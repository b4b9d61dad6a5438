"""Call services against the real database: rules checked before writing, state changes, events."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from calls import events, services
from calls.events import EventType
from calls.exceptions import (
    CallAlreadyLive,
    CallNotFound,
    ConversationNotFound,
    InvalidCallRequest,
    InvalidTransition,
    NotAParticipant,
)
from calls.models import Call, CallParticipant
from tests.factories import make_conversation, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def received():
    seen = []
    events.subscribe(seen.append)
    yield seen
    events.unsubscribe(seen.append)


@pytest.fixture
def trio():
    caller, alice, bob = make_user(), make_user(), make_user()
    conversation = make_conversation(members=[caller, alice, bob], type="group")
    return caller, alice, bob, conversation


def initiate(caller, callees, conversation, call_type="video"):
    return services.call_initiate(
        caller_id=caller.id, conversation_id=conversation.id, callee_ids=[c.id for c in callees], call_type=call_type
    )


def test_initiate_writes_a_ringing_call_with_every_participant(trio, received):
    caller, alice, bob, conversation = trio
    result = initiate(caller, [alice, bob], conversation)
    call = Call.objects.get(pk=result.record.call.id)
    assert (call.status, call.caller_id, call.conversation_id) == ("ringing", caller.id, conversation.id)
    states = dict(CallParticipant.objects.filter(call=call).values_list("user_id", "state"))
    assert states == {caller.id: "joined", alice.id: "ringing", bob.id: "ringing"}
    assert not result.deferred
    assert [e.type for e in received] == [EventType.INCOMING_CALL]
    assert set(received[0].recipient_ids) == {str(caller.id), str(alice.id), str(bob.id)}


def test_an_incoming_call_event_says_who_rings_and_until_when(trio, received, settings):
    """Listeners (signaling, push) read both from the event, never from the call on their own."""
    settings.CALL_RING_TIMEOUT = 42
    caller, alice, bob, conversation = trio
    result = initiate(caller, [alice, bob], conversation)
    (incoming,) = received
    assert set(incoming.ringing_ids) == {str(alice.id), str(bob.id)}
    assert incoming.ring_deadline == result.record.call.started_at + timedelta(seconds=42)
    services.call_join(call_id=result.record.call.id, user_id=alice.id)
    assert received[-1].ringing_ids == (str(bob.id),)


@pytest.mark.parametrize(
    ("callees", "message"),
    [
        (lambda c, a, b: [], "at least one callee"),
        (lambda c, a, b: [a, a], "distinct"),
        (lambda c, a, b: [c], "cannot call yourself"),
    ],
)
def test_initiate_rejects_bad_callee_lists_before_writing(trio, callees, message):
    caller, alice, bob, conversation = trio
    with pytest.raises(InvalidCallRequest, match=message):
        initiate(caller, callees(caller, alice, bob), conversation)
    assert Call.objects.count() == 0


def test_initiate_caps_participants(trio, settings):
    settings.MAX_CALL_PARTICIPANTS = 2
    caller, alice, bob, conversation = trio
    with pytest.raises(InvalidCallRequest, match="at most 2"):
        initiate(caller, [alice, bob], conversation)


def test_initiate_requires_membership_of_caller_and_callees(trio):
    caller, alice, _, conversation = trio
    stranger = make_user()
    with pytest.raises(NotAParticipant):
        initiate(stranger, [alice], conversation)
    with pytest.raises(NotAParticipant) as excinfo:
        initiate(caller, [alice, stranger], conversation)
    assert excinfo.value.details["callee_ids"] == [str(stranger.id)]
    assert Call.objects.count() == 0


def test_initiate_in_an_unknown_conversation(trio):
    caller, alice, _, _ = trio
    with pytest.raises(ConversationNotFound):
        services.call_initiate(
            caller_id=caller.id, conversation_id=uuid.uuid4(), callee_ids=[alice.id], call_type="audio"
        )


def test_glare_second_call_in_a_conversation_gets_the_first_ones_id(trio):
    caller, alice, _, conversation = trio
    first = initiate(caller, [alice], conversation)
    with pytest.raises(CallAlreadyLive) as excinfo:
        initiate(alice, [caller], conversation)
    assert excinfo.value.details == {"call_id": str(first.record.call.id)}


def test_join_makes_the_call_active_and_repeats_are_idempotent(trio, received):
    caller, alice, _, conversation = trio
    call_id = initiate(caller, [alice], conversation).record.call.id
    first = services.call_join(call_id=call_id, user_id=alice.id)
    again = services.call_join(call_id=call_id, user_id=alice.id)
    call = Call.objects.get(pk=call_id)
    assert call.status == "active" and call.answered_at is not None
    assert first.outcome.changed and not again.outcome.changed
    assert [e.type for e in received].count(EventType.CALL_ACCEPTED) == 1


def test_strangers_get_not_found_for_every_action(trio):
    caller, alice, _, conversation = trio
    call_id = initiate(caller, [alice], conversation).record.call.id
    stranger = make_user()
    for action in (services.call_join, services.call_decline, services.call_leave, services.call_end):
        with pytest.raises(CallNotFound):
            action(call_id=call_id, user_id=stranger.id)


def test_unknown_call_is_not_found():
    with pytest.raises(CallNotFound):
        services.call_join(call_id=uuid.uuid4(), user_id=uuid.uuid4())


def test_decline_by_every_callee_ends_the_call_as_declined(trio, received):
    caller, alice, bob, conversation = trio
    call_id = initiate(caller, [alice, bob], conversation).record.call.id
    services.call_decline(call_id=call_id, user_id=alice.id)
    services.call_decline(call_id=call_id, user_id=bob.id)
    call = Call.objects.get(pk=call_id)
    assert (call.status, call.end_reason, call.duration_seconds) == ("declined", "declined", 0)
    assert [e.type for e in received][-2:] == [EventType.CALL_DECLINED, EventType.CALL_ENDED]


def test_end_after_talk_records_duration_and_a_second_end_changes_nothing(trio):
    caller, alice, _, conversation = trio
    call_id = initiate(caller, [alice], conversation).record.call.id
    services.call_join(call_id=call_id, user_id=alice.id)
    now = timezone.now()
    Call.objects.filter(pk=call_id).update(
        started_at=now - timedelta(seconds=50), answered_at=now - timedelta(seconds=42)
    )
    services.call_end(call_id=call_id, user_id=caller.id)
    ended = Call.objects.get(pk=call_id)
    again = services.call_end(call_id=call_id, user_id=alice.id)
    assert (ended.status, ended.end_reason) == ("ended", "hangup")
    assert 42 <= ended.duration_seconds <= 43
    assert not again.outcome.changed
    assert Call.objects.get(pk=call_id).ended_at == ended.ended_at


def test_caller_ending_before_answer_cancels_and_stops_the_ringing(trio, received):
    caller, alice, _, conversation = trio
    call_id = initiate(caller, [alice], conversation).record.call.id
    services.call_end(call_id=call_id, user_id=caller.id)
    assert Call.objects.get(pk=call_id).status == "cancelled"
    cancelled = [e for e in received if e.type == EventType.CALL_CANCELLED]
    assert cancelled and cancelled[0].stopped_ringing_ids == (str(alice.id),)


def test_leave_of_the_last_other_participant_ends_with_hangup(trio):
    caller, alice, _, conversation = trio
    call_id = initiate(caller, [alice], conversation).record.call.id
    services.call_join(call_id=call_id, user_id=alice.id)
    services.call_leave(call_id=call_id, user_id=alice.id)
    call = Call.objects.get(pk=call_id)
    assert (call.status, call.end_reason) == ("ended", "hangup")
    assert CallParticipant.objects.get(call=call, user=alice).left_at is not None


def test_joining_an_ended_call_conflicts(trio):
    caller, alice, _, conversation = trio
    call_id = initiate(caller, [alice], conversation).record.call.id
    services.call_end(call_id=call_id, user_id=caller.id)
    with pytest.raises(InvalidTransition):
        services.call_join(call_id=call_id, user_id=alice.id)


def test_expire_due_marks_only_calls_past_the_ring_timeout_missed(trio, settings, received):
    settings.CALL_RING_TIMEOUT = 30
    caller, alice, bob, conversation = trio
    old = initiate(caller, [alice], conversation).record.call.id
    Call.objects.filter(pk=old).update(started_at=timezone.now() - timedelta(seconds=31))
    fresh_conversation = make_conversation(members=[caller, bob])
    fresh = initiate(caller, [bob], fresh_conversation).record.call.id
    assert services.call_expire_due() == 1
    expired = Call.objects.get(pk=old)
    assert (expired.status, expired.end_reason) == ("missed", "no_answer")
    assert CallParticipant.objects.get(call_id=old, user=alice).state == "missed"
    assert Call.objects.get(pk=fresh).status == "ringing"
    assert EventType.CALL_MISSED in [e.type for e in received]


def test_set_media_records_mute_and_video(trio):
    caller, alice, _, conversation = trio
    call_id = initiate(caller, [alice], conversation).record.call.id
    services.call_set_media(call_id=call_id, user_id=caller.id, is_muted=True, is_video_on=False)
    participant = CallParticipant.objects.get(call_id=call_id, user=caller)
    assert (participant.is_muted, participant.is_video_on) == (True, False)


def test_conversation_create_adds_the_creator_as_admin():
    creator, other = make_user(), make_user()
    conversation, created = services.conversation_create(creator_id=creator.id, type="direct", member_ids=[other.id])
    assert created is True
    roles = dict(conversation.participants.values_list("user_id", "role"))
    assert roles == {creator.id: "admin", other.id: "member"}


def test_direct_conversation_has_exactly_one_other_member():
    creator, a, b = make_user(), make_user(), make_user()
    with pytest.raises(InvalidCallRequest):
        services.conversation_create(creator_id=creator.id, type="direct", member_ids=[a.id, b.id])


def test_conversation_with_unknown_members_is_refused():
    creator = make_user()
    missing = uuid.uuid4()
    with pytest.raises(InvalidCallRequest) as excinfo:
        services.conversation_create(creator_id=creator.id, type="group", member_ids=[missing])
    assert excinfo.value.details == {"member_ids": [str(missing)]}
