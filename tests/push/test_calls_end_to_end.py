"""From the calls REST API to the fake FCM server: real requests, real call events, the
listener, the worker and firebase-admin."""

from datetime import timedelta

import pytest
from django.utils import timezone

from calls import services
from push.services import device_register
from tests.factories import api_client_for, make_conversation, make_user
from tests.push.conftest import wait_for_pushes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ringing(firebase_provider, fcm_server):
    """Ada calls Bob (phone + tablet) over the API; returns ``(ada, bob, call_id)`` once Bob's devices rang."""
    ada, bob = make_user(display_name="Ada"), make_user()
    device_register(user_id=ada.id, token="ada-phone", platform="android")
    device_register(user_id=bob.id, token="bob-phone", platform="android")
    device_register(user_id=bob.id, token="bob-tablet", platform="ios")
    conversation = make_conversation(members=[ada, bob])
    response = api_client_for(ada).post(
        "/v1/calls/initiate",
        {"conversation_id": str(conversation.id), "callee_ids": [str(bob.id)], "call_type": "audio"},
        format="json",
    )
    assert response.status_code == 201, response.content
    call_id = response.json()["data"]["call_id"]
    wait_for_pushes()
    return ada, bob, call_id


def pushes(fcm_server, fid):
    return [(m["data"]["type"], m["data"].get("reason", "")) for m in fcm_server.messages(fid)]


def test_starting_a_call_rings_the_callees_devices(ringing, fcm_server):
    ada, _, call_id = ringing

    assert pushes(fcm_server, "bob-phone") == pushes(fcm_server, "bob-tablet") == [("incoming_call", "")]
    data = fcm_server.messages("bob-phone")[0]["data"]
    assert (data["call_id"], data["caller_id"], data["caller_name"], data["call_type"]) == (
        call_id,
        str(ada.id),
        "Ada",
        "audio",
    )
    assert fcm_server.messages("ada-phone") == []


def test_answering_stops_the_ringing_and_hanging_up_tells_the_other_side(ringing, fcm_server):
    _, bob, call_id = ringing

    assert api_client_for(bob).post(f"/v1/calls/{call_id}/join").status_code == 200
    assert api_client_for(bob).post(f"/v1/calls/{call_id}/end").status_code == 200
    wait_for_pushes()

    for fid in ("bob-phone", "bob-tablet"):
        assert pushes(fcm_server, fid) == [("incoming_call", ""), ("call_cancelled", "answered_elsewhere")]
    assert pushes(fcm_server, "ada-phone") == [("call_ended", "")]


def test_declining_stops_the_other_devices_and_tells_the_caller(ringing, fcm_server):
    _, bob, call_id = ringing

    assert api_client_for(bob).post(f"/v1/calls/{call_id}/decline").status_code == 200
    wait_for_pushes()

    assert pushes(fcm_server, "bob-tablet") == [("incoming_call", ""), ("call_cancelled", "declined")]
    assert pushes(fcm_server, "ada-phone") == [("call_ended", "")]
    assert fcm_server.messages("ada-phone")[0]["data"]["call_status"] == "declined"


def test_the_caller_hanging_up_before_an_answer_cancels_the_ringing(ringing, fcm_server):
    ada, _, call_id = ringing

    assert api_client_for(ada).post(f"/v1/calls/{call_id}/end").status_code == 200
    wait_for_pushes()

    for fid in ("bob-phone", "bob-tablet"):
        assert pushes(fcm_server, fid) == [("incoming_call", ""), ("call_cancelled", "cancelled")]
    assert fcm_server.messages("ada-phone") == []


def test_the_ringing_timeout_cancels_the_ringing_and_reports_a_missed_call(ringing, fcm_server, settings):
    _, _, call_id = ringing

    services.call_expire(call_id=call_id, now=timezone.now() + timedelta(seconds=settings.CALL_RING_TIMEOUT + 1))
    wait_for_pushes()

    for fid in ("bob-phone", "bob-tablet"):
        assert pushes(fcm_server, fid) == [("incoming_call", ""), ("call_cancelled", "missed"), ("missed_call", "")]
    assert pushes(fcm_server, "ada-phone") == [("call_ended", "")]
