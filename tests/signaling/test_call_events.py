"""Which sockets a call event reaches (signaling.call_events.event_deliveries is pure)."""

import pytest

from calls.events import CallEvent, EventType
from signaling.call_events import event_deliveries

pytestmark = pytest.mark.portable

CALL = "c0ffee00-0000-4000-8000-000000000001"


def call_dict(status, **states):
    return {
        "call_id": CALL,
        "status": status,
        "end_reason": "",
        "participants": [{"user_id": user, "state": state, "leave_reason": ""} for user, state in states.items()],
    }


def test_a_callee_who_rang_out_of_an_answered_call_alone_hears_call_missed_and_loses_her_socket():
    call = call_dict("active", alice="joined", bob="joined", carol="missed")
    event = CallEvent(EventType.CALL_MISSED, call, ("alice", "bob", "carol"), None, "", ("carol",))

    deliveries = event_deliveries(event)

    assert [(group, message["type"]) for group, message in deliveries] == [
        ("user.carol", "call.event"),  # her events socket: call_missed; Alice's and Bob's hear nothing
        (f"call.{CALL}.user.carol", "participant.revoked"),  # her signaling socket closes (4403)
    ]
    assert deliveries[0][1]["event"]["type"] == "call_missed"


def test_a_participant_lost_past_the_grace_is_announced_with_its_reason():
    call = call_dict("ended", alice="left", bob="left")
    call["participants"][1]["leave_reason"] = "connection_lost"
    event = CallEvent(EventType.PARTICIPANT_LEFT, call, ("alice", "bob"), "bob", "connection_lost")

    deliveries = event_deliveries(event)

    leaves = [m["message"] for g, m in deliveries if g == f"call.{CALL}" and m["type"] == "signal.relay"]
    assert leaves and leaves[0]["type"] == "leave" and leaves[0]["reason"] == "connection_lost"
    assert leaves[0]["sender_id"] == "bob"
    assert not any(m["type"] == "participant.revoked" for _, m in deliveries)  # the call is over: call_ended closes


def test_a_hang_up_over_rest_revokes_the_leavers_socket_which_says_leave_itself():
    call = call_dict("active", alice="joined", bob="joined", carol="left")
    call["participants"][2]["leave_reason"] = "hangup"
    event = CallEvent(EventType.PARTICIPANT_LEFT, call, ("alice", "bob", "carol"), "carol", "")

    deliveries = event_deliveries(event)

    assert deliveries == [(f"call.{CALL}.user.carol", {"type": "participant.revoked", "state": "left"})]
