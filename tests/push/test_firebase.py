"""Pushes through the real firebase-admin SDK to a fake FCM server on loopback: the wire
format, the SDK's error mapping, our retries and dead-token handling."""

import warnings
from datetime import timedelta

import pytest
from django.utils import timezone

from push import notifications
from push.delivery import push_send
from push.models import Device
from push.services import device_register
from tests.factories import make_user
from tests.push.conftest import PROJECT_ID
from tests.push.factories import call_dict, in_a_minute

pytestmark = [pytest.mark.portable, pytest.mark.django_db]


@pytest.fixture
def callee():
    user = make_user(display_name="Grace")
    device_register(user_id=user.id, token="android-fid-1", platform="android")
    return user


def test_incoming_call_goes_out_as_a_high_priority_data_message(firebase_provider, fcm_server, callee, settings):
    settings.CALL_RING_TIMEOUT = 60
    call = call_dict(caller_id="caller-id", callees=[callee.id])
    push = notifications.incoming_call(call=call, caller_name="Ada", expires_at=in_a_minute())

    report = push_send(user_ids=[callee.id], notification=push)

    assert report.sent == ["android-fid-1"]
    [request] = fcm_server.requests
    assert request["path"] == f"/v1/projects/{PROJECT_ID}/messages:send"
    assert request["headers"]["authorization"] == "Bearer test-access-token"
    message = request["body"]["message"]
    assert message["fid"] == "android-fid-1"
    assert "token" not in message
    assert "notification" not in message  # data only: the app draws the ringing UI
    assert message["data"] == push.data
    assert message["data"]["call_status"] == "ringing"
    assert message["android"] == {"priority": "high", "ttl": "60s"}
    apns = message["apns"]
    assert apns["headers"]["apns-push-type"] == "alert"
    assert apns["headers"]["apns-priority"] == "10"
    assert apns["headers"]["apns-collapse-id"] == call["call_id"]
    assert apns["headers"]["apns-expiration"] == str(int(push.expires_at.timestamp()))
    assert apns["payload"]["aps"]["category"] == "INCOMING_CALL"
    assert apns["payload"]["aps"]["alert"] == {"title": "Incoming video call", "body": "Ada is calling"}
    assert message["webpush"]["headers"] == {"Urgency": "high", "TTL": "60"}


def test_call_cancelled_is_a_silent_high_priority_push_that_lives_one_ring_window(
    firebase_provider, fcm_server, callee, settings
):
    settings.CALL_RING_TIMEOUT = 30
    call = call_dict(caller_id="caller-id", callees={str(callee.id): "missed"}, status="cancelled")

    push_send(user_ids=[callee.id], notification=notifications.call_cancelled(call=call, reason="cancelled"))

    [message] = fcm_server.messages()
    assert message["data"]["type"] == "call_cancelled"
    assert message["data"]["reason"] == "cancelled"
    assert message["android"] == {"priority": "high", "ttl": "30s"}
    assert message["apns"]["headers"]["apns-push-type"] == "background"
    assert message["apns"]["headers"]["apns-priority"] == "5"
    assert message["apns"]["payload"]["aps"] == {"content-available": 1}


def test_missed_call_and_call_ended_payloads(firebase_provider, fcm_server, callee):
    missed = call_dict(caller_id="caller-id", callees={str(callee.id): "missed"}, status="missed")
    ended = call_dict(caller_id="caller-id", callees={str(callee.id): "left"}, status="ended", end_reason="hangup")

    push_send(user_ids=[callee.id], notification=notifications.missed_call(call=missed, caller_name="Ada"))
    push_send(user_ids=[callee.id], notification=notifications.call_ended(call=ended, ended_by="caller-id"))

    missed_message, ended_message = fcm_server.messages()
    assert missed_message["data"]["type"] == "missed_call"
    assert missed_message["data"]["caller_name"] == "Ada"
    assert missed_message["apns"]["payload"]["aps"]["category"] == "MISSED_CALL"
    assert missed_message["apns"]["headers"]["apns-collapse-id"] == missed["call_id"]  # replaces the ringing alert
    assert missed_message["android"] == {"priority": "high"}
    assert ended_message["data"]["type"] == "call_ended"
    assert ended_message["data"]["end_reason"] == "hangup"
    assert ended_message["data"]["ended_by"] == "caller-id"


def test_every_active_device_of_every_user_receives_it(firebase_provider, fcm_server):
    ann, bob = make_user(), make_user()
    for user, token, platform in [
        (ann, "ann-phone", "android"),
        (ann, "ann-tablet", "ios"),
        (bob, "bob-phone", "ios"),
        (bob, "bob-browser", "web"),
    ]:
        device_register(user_id=user.id, token=token, platform=platform)
    device_register(user_id=bob.id, token="bob-old-phone", platform="android")
    Device.objects.filter(token="bob-old-phone").update(is_active=False)
    bystander = make_user()
    device_register(user_id=bystander.id, token="bystander-phone", platform="android")
    call = call_dict(caller_id=bystander.id, callees=[ann.id, bob.id])

    report = push_send(
        user_ids=[ann.id, bob.id],
        notification=notifications.incoming_call(call=call, caller_name="C", expires_at=in_a_minute()),
    )

    expected = {"ann-phone", "ann-tablet", "bob-phone", "bob-browser"}
    assert set(report.sent) == expected
    assert {m["fid"] for m in fcm_server.messages()} == expected


def test_quota_exceeded_is_retried_with_backoff_until_it_succeeds(firebase_provider, fcm_server, callee, fast_retries):
    fcm_server.script("android-fid-1", "quota", "quota", "ok")
    call = call_dict(caller_id="caller-id", callees=[callee.id])

    report = push_send(
        user_ids=[callee.id],
        notification=notifications.incoming_call(call=call, caller_name="Ada", expires_at=in_a_minute()),
    )

    assert report.sent == ["android-fid-1"]
    assert report.attempts == 3
    assert fcm_server.replies("android-fid-1") == ["quota", "quota", "ok"]


def test_server_errors_are_retried_and_only_the_failed_device_is_sent_again(
    firebase_provider, fcm_server, callee, fast_retries
):
    device_register(user_id=callee.id, token="ios-fid-2", platform="ios")
    fcm_server.script("ios-fid-2", "bad_gateway", "internal", "ok")
    call = call_dict(caller_id="caller-id", callees=[callee.id])

    report = push_send(
        user_ids=[callee.id],
        notification=notifications.incoming_call(call=call, caller_name="Ada", expires_at=in_a_minute()),
    )

    assert sorted(report.sent) == ["android-fid-1", "ios-fid-2"]
    assert fcm_server.replies("android-fid-1") == ["ok"]
    # 502 comes back to us and we try again; that 500 the SDK's transport retries by itself.
    assert fcm_server.replies("ios-fid-2") == ["bad_gateway", "internal", "ok"]
    assert report.attempts == 2


def test_retries_are_bounded(firebase_provider, fcm_server, callee, fast_retries):
    fcm_server.script("android-fid-1", *["quota"] * 10)
    call = call_dict(caller_id="caller-id", callees=[callee.id])

    report = push_send(
        user_ids=[callee.id],
        notification=notifications.incoming_call(call=call, caller_name="Ada", expires_at=in_a_minute()),
    )

    assert report.failed == ["android-fid-1"]
    assert report.attempts == fast_retries.PUSH_RETRY_ATTEMPTS == 3
    assert len(fcm_server.replies("android-fid-1")) == 3
    assert Device.objects.get(token="android-fid-1").is_active  # a busy FCM says nothing about the device


@pytest.mark.parametrize("reply", ["unregistered", "invalid_token"])
def test_a_dead_token_is_deactivated_at_once_and_not_retried(
    firebase_provider, fcm_server, callee, fast_retries, reply
):
    device_register(user_id=callee.id, token="ios-fid-2", platform="ios")
    fcm_server.script("android-fid-1", reply)
    call = call_dict(caller_id="caller-id", callees=[callee.id])

    report = push_send(
        user_ids=[callee.id],
        notification=notifications.incoming_call(call=call, caller_name="Ada", expires_at=in_a_minute()),
    )

    assert report.dead == ["android-fid-1"]
    assert report.sent == ["ios-fid-2"]
    assert fcm_server.replies("android-fid-1") == [reply]
    assert not Device.objects.get(token="android-fid-1").is_active
    assert Device.objects.get(token="ios-fid-2").is_active


def test_a_bad_message_does_not_deactivate_the_device(firebase_provider, fcm_server, callee, fast_retries):
    fcm_server.script("android-fid-1", "invalid_payload")
    call = call_dict(caller_id="caller-id", callees=[callee.id])

    report = push_send(
        user_ids=[callee.id],
        notification=notifications.incoming_call(call=call, caller_name="Ada", expires_at=in_a_minute()),
    )

    assert report.failed == ["android-fid-1"]
    assert len(fcm_server.replies("android-fid-1")) == 1
    assert Device.objects.get(token="android-fid-1").is_active


def test_an_expired_incoming_call_is_not_sent(firebase_provider, fcm_server, callee, settings):
    settings.CALL_RING_TIMEOUT = 60
    started = timezone.now() - timedelta(seconds=61)
    call = call_dict(caller_id="caller-id", callees=[callee.id], started_at=started)

    report = push_send(
        user_ids=[callee.id],
        notification=notifications.incoming_call(
            call=call, caller_name="Ada", expires_at=started + timedelta(seconds=settings.CALL_RING_TIMEOUT)
        ),
    )

    assert report.sent == []
    assert fcm_server.requests == []


def test_sending_uses_the_sdks_current_api_without_deprecation_warnings(firebase_provider, fcm_server, callee):
    call = call_dict(caller_id="caller-id", callees=[callee.id])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        report = push_send(
            user_ids=[callee.id],
            notification=notifications.incoming_call(call=call, caller_name="A", expires_at=in_a_minute()),
        )
    assert report.sent == ["android-fid-1"]
