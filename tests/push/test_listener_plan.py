"""Which call event sends which push to whom (push_plan is pure: no database, no network)."""

import pytest

from calls.events import EventType
from push.listener import PlannedPush, push_plan
from tests.push.factories import call_dict, event

pytestmark = pytest.mark.portable


def test_incoming_call_rings_every_callee_but_not_the_caller():
    call = call_dict(caller_id="caller", callees=["a", "b"])

    assert push_plan(event(EventType.INCOMING_CALL, call, actor_id="caller")) == [
        PlannedPush("incoming_call", ("a", "b"))
    ]


def test_accept_stops_the_ringing_of_the_answering_users_other_devices():
    call = call_dict(caller_id="caller", callees={"a": "joined", "b": "ringing"}, status="active")

    plan = push_plan(event(EventType.CALL_ACCEPTED, call, actor_id="a"))

    # b keeps ringing in a group call; only a's other devices stop.
    assert plan == [PlannedPush("call_cancelled", ("a",), "answered_elsewhere")]


def test_accept_also_stops_callees_whose_ringing_the_answer_ended():
    call = call_dict(caller_id="caller", callees={"a": "joined", "b": "missed"}, status="active")

    plan = push_plan(event(EventType.CALL_ACCEPTED, call, actor_id="a", stopped_ringing_ids=["b"]))

    assert plan == [PlannedPush("call_cancelled", ("a", "b"), "answered_elsewhere")]


def test_decline_stops_the_decliners_other_devices():
    call = call_dict(caller_id="caller", callees={"a": "declined"}, status="declined")

    assert push_plan(event(EventType.CALL_DECLINED, call, actor_id="a")) == [
        PlannedPush("call_cancelled", ("a",), "declined")
    ]


def test_caller_cancel_stops_the_callees_still_ringing():
    call = call_dict(caller_id="caller", callees={"a": "missed", "b": "declined"}, status="cancelled")

    with_ids = push_plan(event(EventType.CALL_CANCELLED, call, actor_id="caller", stopped_ringing_ids=["a"]))
    without_ids = push_plan(event(EventType.CALL_CANCELLED, call, actor_id="caller"))

    assert with_ids == without_ids == [PlannedPush("call_cancelled", ("a",), "cancelled")]


def test_timeout_stops_the_ringing_then_reports_a_missed_call():
    call = call_dict(caller_id="caller", callees={"a": "missed"}, status="missed")

    assert push_plan(event(EventType.CALL_MISSED, call, stopped_ringing_ids=["a"])) == [
        PlannedPush("call_cancelled", ("a",), "missed"),
        PlannedPush("missed_call", ("a",)),
    ]


def test_call_ended_goes_to_every_participant_but_the_one_who_ended_it():
    call = call_dict(caller_id="caller", callees={"a": "left", "b": "left"}, status="ended")

    assert push_plan(event(EventType.CALL_ENDED, call, actor_id="a")) == [PlannedPush("call_ended", ("caller", "b"))]


@pytest.mark.parametrize("status", ["cancelled", "missed"])
def test_call_ended_after_a_cancel_or_timeout_skips_the_callees_already_told(status):
    call = call_dict(caller_id="caller", callees={"a": "missed", "b": "declined"}, status=status)

    assert push_plan(event(EventType.CALL_ENDED, call, actor_id=None, stopped_ringing_ids=["a"])) == [
        PlannedPush("call_ended", ("caller", "b"))
    ]


def test_call_ended_by_a_hang_up_still_tells_a_callee_who_was_ringing():
    call = call_dict(caller_id="caller", callees={"a": "left", "b": "missed"}, status="ended")

    assert push_plan(event(EventType.CALL_ENDED, call, actor_id="a", stopped_ringing_ids=["b"])) == [
        PlannedPush("call_ended", ("caller", "b"))
    ]


@pytest.mark.parametrize("event_type", [EventType.PARTICIPANT_LEFT, EventType.MEDIA_CHANGED])
def test_in_call_events_push_nothing(event_type):
    call = call_dict(caller_id="caller", callees={"a": "joined"}, status="active")

    assert push_plan(event(event_type, call, actor_id="a")) == []


def test_nobody_to_tell_means_no_push():
    call = call_dict(caller_id="caller", callees={"a": "declined"}, status="declined")

    assert push_plan(event(EventType.CALL_CANCELLED, call, actor_id="caller")) == []


def test_a_callee_who_rang_out_of_an_answered_group_call_alone_gets_the_missed_call():
    call = call_dict(caller_id="caller", callees={"bob": "joined", "carol": "missed"}, status="active")

    plan = push_plan(event(EventType.CALL_MISSED, call, stopped_ringing_ids=["carol"]))

    # Bob is talking: his phone hears nothing; Carol's stops ringing and shows a missed call.
    assert plan == [PlannedPush("call_cancelled", ("carol",), "missed"), PlannedPush("missed_call", ("carol",))]
