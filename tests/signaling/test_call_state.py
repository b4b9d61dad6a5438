"""Call state on the sockets: call_ended closes every signaling socket of the call, and the
events socket tells a user about the calls that concern them, after commit only."""

import json
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.db import transaction
from django.test import Client
from django.utils import timezone

from calls import services
from calls.models import Call
from tests.factories import make_conversation
from tests.signaling.conftest import (
    EVENTS_PATH,
    expect_close,
    expect_refusal,
    frame,
    make_call_with,
    make_person,
    receive_type,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def rest(person, path, data=None):
    """A REST call as a client makes it (through the API's views, envelope and throttles)."""
    response = Client().post(
        path, data=json.dumps(data or {}), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {person.token}"
    )
    assert response.status_code in (200, 201), response.content
    return response.json()["data"]


async def arest(person, path, data=None):
    return await database_sync_to_async(rest)(person, path, data)


async def expect_call_ended(socket, reason: str) -> dict:
    ended = await receive_type(socket, "call_ended")
    assert ended["reason"] == reason, ended
    await expect_close(socket, 1000)
    return ended


# --- call_ended on the signaling sockets ------------------------------------------------------------


async def test_ending_through_rest_ends_every_socket_of_the_call(sockets, transactional_db):
    active = await database_sync_to_async(make_call_with)(status=Call.Status.ACTIVE)
    caller = await sockets.signaling(active.id, active.caller)
    callee = await sockets.signaling(active.id, active.callees[0])
    await receive_type(caller, "join")

    await arest(active.caller, f"/v1/calls/{active.id}/end")
    ended = await expect_call_ended(caller, "hangup")
    assert ended["call_id"] == active.id and ended["status"] == "ended"
    await expect_call_ended(callee, "hangup")
    await caller.disconnect()
    assert await callee.receive_nothing(timeout=0.2)  # no leave after the call is over


async def test_the_last_leave_ends_the_call_on_the_sockets(sockets, two_party):
    caller = await sockets.signaling(two_party.id, two_party.caller)
    callee = await sockets.signaling(two_party.id, two_party.callees[0])
    await receive_type(caller, "join")
    await arest(two_party.callees[0], f"/v1/calls/{two_party.id}/join")
    await arest(two_party.callees[0], f"/v1/calls/{two_party.id}/leave")
    await expect_call_ended(caller, "hangup")
    await expect_call_ended(callee, "hangup")


async def test_declined_by_every_callee_ends_the_call_on_the_sockets(sockets, three_party):
    caller = await sockets.signaling(three_party.id, three_party.caller)
    await arest(three_party.callees[0], f"/v1/calls/{three_party.id}/decline")
    assert await caller.receive_nothing(timeout=0.2)  # one callee is still ringing
    await arest(three_party.callees[1], f"/v1/calls/{three_party.id}/decline")
    await expect_call_ended(caller, "declined")


async def test_the_ringing_timeout_ends_the_call_on_the_sockets(sockets, two_party, settings):
    caller = await sockets.signaling(two_party.id, two_party.caller)
    later = timezone.now() + timedelta(seconds=settings.CALL_RING_TIMEOUT + 1)
    assert await database_sync_to_async(services.call_expire_due)(now=later) == 1
    await expect_call_ended(caller, "no_answer")


async def test_sockets_of_other_calls_are_untouched(sockets, two_party, transactional_db):
    other = await database_sync_to_async(make_call_with)(status=Call.Status.ACTIVE)
    bystander = await sockets.signaling(other.id, other.caller)
    caller = await sockets.signaling(two_party.id, two_party.caller)
    await arest(two_party.caller, f"/v1/calls/{two_party.id}/end")
    await expect_call_ended(caller, "cancelled")
    assert await bystander.receive_nothing(timeout=0.2)


# --- the events socket --------------------------------------------------------------------------------


@pytest.fixture
def direct_pair(transactional_db):
    """A caller and a callee with a direct conversation, no call yet."""
    caller, callee = make_person(), make_person()
    conversation = make_conversation(members=[caller.user, callee.user])
    return caller, callee, conversation


async def start_call(caller, callee, conversation) -> str:
    data = await arest(
        caller,
        "/v1/calls/initiate",
        {"call_type": "video", "conversation_id": str(conversation.id), "callee_ids": [callee.id]},
    )
    return data["call_id"]


async def test_incoming_call_reaches_the_callee_and_not_the_caller(sockets, direct_pair):
    caller, callee, conversation = direct_pair
    caller_events = await sockets.events(caller)
    callee_events = await sockets.events(callee)
    call_id = await start_call(caller, callee, conversation)
    incoming = await receive_type(callee_events, "incoming_call")
    assert incoming["call_id"] == call_id
    assert incoming["caller_id"] == caller.id
    assert incoming["call_type"] == "video"
    assert incoming["conversation_id"] == str(conversation.id)
    assert incoming["call"]["status"] == "ringing"
    assert await caller_events.receive_nothing(timeout=0.2)


async def test_an_answer_stops_the_ringing_on_the_callees_other_devices(sockets, direct_pair):
    caller, callee, conversation = direct_pair
    phone, tablet = await sockets.events(callee), await sockets.events(callee)
    caller_events = await sockets.events(caller)
    call_id = await start_call(caller, callee, conversation)
    await receive_type(phone, "incoming_call")
    await receive_type(tablet, "incoming_call")

    await arest(callee, f"/v1/calls/{call_id}/join")  # answered on the phone
    for socket in (phone, tablet, caller_events):
        accepted = await receive_type(socket, "call_accepted")
        assert accepted["call_id"] == call_id and accepted["actor_id"] == callee.id


async def test_call_declined_reaches_the_caller(sockets, direct_pair):
    caller, callee, conversation = direct_pair
    caller_events = await sockets.events(caller)
    call_id = await start_call(caller, callee, conversation)
    await arest(callee, f"/v1/calls/{call_id}/decline")
    declined = await receive_type(caller_events, "call_declined")
    assert declined["actor_id"] == callee.id
    assert (await receive_type(caller_events, "call_ended"))["reason"] == "declined"


async def test_call_cancelled_reaches_the_ringing_callee(sockets, direct_pair):
    caller, callee, conversation = direct_pair
    callee_events = await sockets.events(callee)
    call_id = await start_call(caller, callee, conversation)
    await receive_type(callee_events, "incoming_call")
    await arest(caller, f"/v1/calls/{call_id}/end")
    cancelled = await receive_type(callee_events, "call_cancelled")
    assert cancelled["call_id"] == call_id and cancelled["reason"] == "cancelled"
    assert (await receive_type(callee_events, "call_ended"))["status"] == "cancelled"


async def test_call_missed_reaches_both(sockets, direct_pair, settings):
    caller, callee, conversation = direct_pair
    caller_events, callee_events = await sockets.events(caller), await sockets.events(callee)
    call_id = await start_call(caller, callee, conversation)
    await receive_type(callee_events, "incoming_call")
    later = timezone.now() + timedelta(seconds=settings.CALL_RING_TIMEOUT + 1)
    await database_sync_to_async(services.call_expire_due)(now=later)
    for socket in (caller_events, callee_events):
        missed = await receive_type(socket, "call_missed")
        assert missed["call_id"] == call_id and missed["reason"] == "no_answer"
        await receive_type(socket, "call_ended")


async def test_call_ended_reaches_everyone_in_the_call(sockets, direct_pair):
    caller, callee, conversation = direct_pair
    caller_events, callee_events = await sockets.events(caller), await sockets.events(callee)
    call_id = await start_call(caller, callee, conversation)
    await arest(callee, f"/v1/calls/{call_id}/join")
    await arest(caller, f"/v1/calls/{call_id}/end")
    await receive_type(callee_events, "incoming_call")
    await receive_type(callee_events, "call_accepted")
    assert (await receive_type(callee_events, "call_ended"))["reason"] == "hangup"
    await receive_type(caller_events, "call_accepted")
    ended = await receive_type(caller_events, "call_ended")
    assert ended["actor_id"] == caller.id and ended["call"]["status"] == "ended"


async def test_a_write_that_rolls_back_notifies_nobody(sockets, direct_pair):
    caller, callee, conversation = direct_pair
    callee_events = await sockets.events(callee)

    def initiate_then_fail():
        with pytest.raises(RuntimeError), transaction.atomic():
            services.call_initiate(
                caller_id=caller.id, conversation_id=conversation.id, callee_ids=[callee.id], call_type="audio"
            )
            raise RuntimeError("rolled back")

    await database_sync_to_async(initiate_then_fail)()
    assert await callee_events.receive_nothing(timeout=0.3)
    assert not await database_sync_to_async(Call.objects.filter(conversation=conversation).exists)()
    await start_call(caller, callee, conversation)  # the same call, committed this time
    await receive_type(callee_events, "incoming_call")


async def test_the_events_socket_authenticates_the_same_way(sockets, direct_pair):
    caller, *_ = direct_pair
    anonymous = sockets.communicator(EVENTS_PATH)
    await anonymous.connect(timeout=5)
    await expect_refusal(anonymous, 4401)
    browser = sockets.communicator(EVENTS_PATH, subprotocols=["bearer", caller.token])
    assert await browser.connect(timeout=5) == (True, "bearer")
    await browser.send_to(text_data=frame(type="ping"))
    await receive_type(browser, "pong")


async def test_the_events_socket_takes_only_ping(sockets, direct_pair):
    caller, *_ = direct_pair
    events = await sockets.events(caller)
    await events.send_to(text_data=frame(type="offer", sdp="v=0"))
    error = await receive_type(events, "error")
    assert error["code"] == "unknown_type" and "ping" in error["message"]
