"""What each kind of push says (provider-independent)."""

from datetime import UTC, datetime, timedelta

import pytest

from push import notifications
from push.notifications import CancelReason, PushKind
from tests.push.factories import call_dict

pytestmark = pytest.mark.portable

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def test_incoming_call_carries_the_call_the_caller_and_when_ringing_stops(settings):
    settings.CALL_RING_TIMEOUT = 45
    call = call_dict(caller_id="caller-1", callees=["callee-1"], call_type="audio", started_at=NOW)

    push = notifications.incoming_call(
        call=call, caller_name="Ada", expires_at=NOW + timedelta(seconds=settings.CALL_RING_TIMEOUT), now=NOW
    )

    assert push.data == {
        "type": "incoming_call",
        "call_id": call["call_id"],
        "conversation_id": call["conversation_id"],
        "caller_id": "caller-1",
        "caller_name": "Ada",
        "call_type": "audio",
        "call_status": "ringing",
        "timestamp": "2026-11-28T12:00:00Z",
        "expires_at": "2026-11-28T12:00:45Z",
    }
    assert push.ttl_seconds == 45
    assert push.expires_at == NOW + timedelta(seconds=45)
    assert push.alert.category == "INCOMING_CALL"
    assert push.alert.body == "Ada is calling"


def test_a_late_incoming_call_lives_only_for_what_is_left_of_the_ring_window(settings):
    settings.CALL_RING_TIMEOUT = 60
    call = call_dict(caller_id="c", callees=["x"], started_at=NOW)

    push = notifications.incoming_call(
        call=call, caller_name="Ada", expires_at=NOW + timedelta(seconds=60), now=NOW + timedelta(seconds=50)
    )

    assert push.ttl_seconds == 10
    assert not push.is_expired(NOW + timedelta(seconds=59))
    assert push.is_expired(NOW + timedelta(seconds=60))


def test_call_cancelled_says_why_and_the_calls_status(settings):
    settings.CALL_RING_TIMEOUT = 30
    call = call_dict(caller_id="c", callees={"x": "joined"}, status="active")

    push = notifications.call_cancelled(call=call, reason=CancelReason.ANSWERED_ELSEWHERE, now=NOW)

    assert push.kind == PushKind.CALL_CANCELLED
    assert push.data == {
        "type": "call_cancelled",
        "call_id": call["call_id"],
        "conversation_id": call["conversation_id"],
        "caller_id": "c",
        "call_type": "video",
        "call_status": "active",
        "reason": "answered_elsewhere",
        "timestamp": "2026-11-28T12:00:00Z",
    }
    assert push.ttl_seconds == 30
    assert push.alert is None  # silent


def test_missed_call_names_the_caller_and_is_a_visible_alert():
    call = call_dict(caller_id="c", callees={"x": "missed"}, status="missed", started_at=NOW)

    push = notifications.missed_call(call=call, caller_name="Ada", now=NOW)

    assert push.data["type"] == "missed_call"
    assert push.data["caller_name"] == "Ada"
    assert push.data["call_status"] == "missed"
    assert push.data["started_at"] == "2026-11-28T12:00:00Z"
    assert push.alert.category == "MISSED_CALL"


def test_call_ended_reports_status_reason_duration_and_who_ended_it():
    call = call_dict(caller_id="c", callees={"x": "left"}, status="ended", end_reason="hangup", duration_seconds=42)

    push = notifications.call_ended(call=call, ended_by="c", now=NOW)

    assert push.data["type"] == "call_ended"
    assert push.data["call_status"] == "ended"
    assert push.data["end_reason"] == "hangup"
    assert push.data["duration_seconds"] == "42"
    assert push.data["ended_by"] == "c"
    assert all(isinstance(value, str) for value in push.data.values())
