"""Opening a signaling socket: authentication, Origin, participation, call state, the cap."""

import logging
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from django.utils import timezone

from accounts import tokens
from calls import services
from calls.models import Call
from calls.persistence import availability
from signaling.limits import signaling_slots
from tests.factories import make_conversation
from tests.signaling.conftest import (
    EVENTS_PATH,
    SIGNALING_PATH,
    CallFixture,
    expect_refusal,
    make_call_with,
    make_person,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


async def test_native_client_connects_with_an_authorization_header(sockets, two_party):
    socket = await sockets.signaling(two_party.id, two_party.caller)
    assert socket.participants == []


async def test_browser_connects_with_the_bearer_subprotocol_and_it_is_accepted(sockets, two_party):
    communicator = sockets.communicator(
        f"{SIGNALING_PATH}?call_id={two_party.id}", subprotocols=["bearer", two_party.caller.token]
    )
    connected, subprotocol = await communicator.connect(timeout=5)
    assert connected and subprotocol == "bearer"  # never the token itself
    assert (await communicator.receive_json_from(timeout=5))["type"] == "participants"


async def test_a_refused_browser_still_gets_the_bearer_subprotocol_so_it_sees_the_code(sockets, two_party):
    communicator = sockets.communicator(f"{SIGNALING_PATH}?call_id={two_party.id}", subprotocols=["bearer", "junk"])
    connected, subprotocol = await communicator.connect(timeout=5)
    assert connected and subprotocol == "bearer"
    await expect_refusal(communicator, 4401)


async def test_missing_call_id_is_4400(sockets, two_party):
    socket = await sockets.connect_signaling(None, two_party.caller)
    error = await expect_refusal(socket, 4400)
    assert error["code"] == "bad_request"


async def test_malformed_call_id_is_4400(sockets, two_party):
    socket = await sockets.connect_signaling("not-a-uuid", two_party.caller)
    await expect_refusal(socket, 4400)


async def test_a_token_in_the_query_string_is_refused(sockets, two_party):
    communicator = sockets.communicator(f"{SIGNALING_PATH}?call_id={two_party.id}&token={two_party.caller.token}")
    await communicator.connect(timeout=5)
    error = await expect_refusal(communicator, 4400)
    assert two_party.caller.token not in error["message"]


async def test_no_token_is_4401(sockets, two_party):
    socket = await sockets.connect_signaling(two_party.id)
    error = await expect_refusal(socket, 4401)
    assert error["code"] == "unauthenticated"


async def test_an_invalid_token_is_4401(sockets, two_party):
    socket = await sockets.connect_signaling(two_party.id, token="not.a.token")
    await expect_refusal(socket, 4401)


async def test_a_malformed_authorization_header_is_4401(sockets, two_party):
    communicator = sockets.communicator(
        f"{SIGNALING_PATH}?call_id={two_party.id}", headers=[(b"authorization", b"Token abc")]
    )
    await communicator.connect(timeout=5)
    await expect_refusal(communicator, 4401)


def expired_access_token(person) -> str:
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    claims = {
        "user_id": person.id,
        "sub": person.id,
        "type": tokens.ACCESS,
        "jti": uuid.uuid4().hex,
        "iat": an_hour_ago - timedelta(minutes=15),
        "exp": an_hour_ago,
        "aud": tokens.AUDIENCE,
        "iss": tokens.ISSUER,
    }
    return jwt.encode(claims, django_settings.JWT_SECRET, algorithm=tokens.ALGORITHM)


async def test_an_expired_token_is_4401_and_says_so(sockets, two_party):
    socket = await sockets.connect_signaling(two_party.id, token=expired_access_token(two_party.caller))
    error = await expect_refusal(socket, 4401)
    assert error["message"] == "Token has expired"


async def test_a_revoked_token_is_4401(sockets, two_party):
    claims = tokens.decode_access_token(two_party.caller.token)
    await database_sync_to_async(tokens.revoke)(claims.jti, claims.expires_at)
    socket = await sockets.connect_signaling(two_party.id, two_party.caller)
    error = await expect_refusal(socket, 4401)
    assert "revoked" in error["message"]


async def test_someone_outside_the_call_is_told_no_such_call_4404_as_on_the_api(sockets, two_party):
    stranger = await database_sync_to_async(make_person)()
    socket = await sockets.connect_signaling(two_party.id, stranger)
    error = await expect_refusal(socket, 4404)
    assert error["code"] == "call_not_found"


async def test_a_refused_socket_is_never_announced_to_the_call(sockets, two_party):
    caller = await sockets.signaling(two_party.id, two_party.caller)
    stranger = await database_sync_to_async(make_person)()
    socket = await sockets.connect_signaling(two_party.id, stranger)
    await expect_refusal(socket, 4404)
    await socket.disconnect()
    assert await caller.receive_nothing(timeout=0.2)  # neither join nor leave


async def test_an_unknown_call_is_4404(sockets, two_party):
    socket = await sockets.connect_signaling(uuid.uuid4(), two_party.caller)
    error = await expect_refusal(socket, 4404)
    assert error["code"] == "call_not_found"


async def test_an_ended_call_is_4409(sockets, transactional_db):
    ended = await database_sync_to_async(make_call_with)(talk_seconds=30)
    socket = await sockets.connect_signaling(ended.id, ended.caller)
    error = await expect_refusal(socket, 4409)
    assert error["code"] == "call_ended"


async def test_a_ringing_call_past_its_timeout_is_expired_and_refused_4409(sockets, transactional_db, settings):
    late = timezone.now() - timedelta(seconds=settings.CALL_RING_TIMEOUT + 5)
    stale = await database_sync_to_async(make_call_with)(started_at=late)
    socket = await sockets.connect_signaling(stale.id, stale.callees[0])
    await expect_refusal(socket, 4409)
    assert (await database_sync_to_async(Call.objects.get)(pk=stale.id)).status == Call.Status.MISSED


async def test_an_active_call_accepts_its_callee(sockets, transactional_db):
    active = await database_sync_to_async(make_call_with)(status=Call.Status.ACTIVE)
    await sockets.signaling(active.id, active.callees[0])


async def test_an_unknown_call_while_the_database_is_away_is_4503(sockets, two_party, spool_path):
    availability.transition(availability.LIMITED)
    socket = await sockets.connect_signaling(uuid.uuid4(), two_party.caller)
    error = await expect_refusal(socket, 4503)
    assert error["code"] == "unavailable"


@pytest.fixture
def spool_call(transactional_db, spool_path) -> CallFixture:
    """A call started through the service, so its snapshot is cached as a settled server's is."""
    caller, callee = make_person(), make_person()
    conversation = make_conversation(members=[caller.user, callee.user])
    result = services.call_initiate(
        caller_id=caller.user.id, conversation_id=conversation.id, callee_ids=[callee.user.id], call_type="video"
    )
    return CallFixture(result.record.call, caller, [callee])


# --- Origin --------------------------------------------------------------------------------------


async def test_a_listed_browser_origin_is_allowed(sockets, two_party, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.secureconnect.example"]
    await sockets.signaling(two_party.id, two_party.caller, origin="https://app.secureconnect.example")


async def test_an_unlisted_browser_origin_is_4403(sockets, two_party, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.secureconnect.example"]
    socket = await sockets.connect_signaling(two_party.id, two_party.caller, origin="https://evil.example")
    error = await expect_refusal(socket, 4403)
    assert "Origin" in error["message"]


async def test_localhost_is_allowed_during_development(sockets, two_party, settings):
    settings.IS_PRODUCTION = False
    await sockets.signaling(two_party.id, two_party.caller, origin="http://localhost:5173")


async def test_localhost_is_refused_in_production(sockets, two_party, settings):
    settings.IS_PRODUCTION = True
    socket = await sockets.connect_signaling(two_party.id, two_party.caller, origin="http://localhost:5173")
    await expect_refusal(socket, 4403)


async def test_a_client_without_origin_is_allowed_with_a_valid_token(sockets, two_party, settings):
    settings.IS_PRODUCTION = True
    await sockets.signaling(two_party.id, two_party.caller)


# --- the per-process cap ---------------------------------------------------------------------------


async def test_the_connection_cap_holds_and_frees_on_disconnect(sockets, two_party, settings):
    settings.WS_MAX_SIGNALING_CONNECTIONS = 2
    first = await sockets.signaling(two_party.id, two_party.caller)
    await sockets.signaling(two_party.id, two_party.callees[0])
    assert signaling_slots.in_use == 2

    third = await sockets.connect_signaling(two_party.id, two_party.caller)
    error = await expect_refusal(third, 4429)
    assert error["code"] == "too_many_connections"
    await third.disconnect()
    assert signaling_slots.in_use == 2  # the refused one never took a slot

    await first.disconnect()
    assert signaling_slots.in_use == 1
    await sockets.signaling(two_party.id, two_party.caller)
    assert signaling_slots.in_use == 2


async def test_refused_sockets_give_their_slot_back(sockets, two_party):
    stranger = await database_sync_to_async(make_person)()
    for _ in range(3):
        socket = await sockets.connect_signaling(two_party.id, stranger)
        await expect_refusal(socket, 4404)
        await socket.disconnect()
    assert signaling_slots.in_use == 0


async def test_a_call_known_from_the_spool_accepts_its_participants_while_the_database_is_away(
    sockets, spool_call, spool_path
):
    availability.transition(availability.LIMITED)  # reads now come from the spool and the snapshot cache
    caller = await sockets.signaling(spool_call.id, spool_call.caller)
    callee = await sockets.signaling(spool_call.id, spool_call.callees[0])
    assert callee.participants == [spool_call.caller.id]
    await caller.receive_json_from(timeout=5)  # the callee's join


async def test_the_events_socket_has_its_own_cap(sockets, two_party, settings):
    settings.WS_MAX_EVENTS_CONNECTIONS = 1
    await sockets.events(two_party.caller)
    refused = sockets.communicator(EVENTS_PATH, token=two_party.callees[0].token)
    await refused.connect(timeout=5)
    await expect_refusal(refused, 4429)
    await sockets.signaling(two_party.id, two_party.caller)  # signaling counts separately


async def test_tokens_never_reach_the_logs(sockets, two_party, caplog):
    caplog.set_level(logging.DEBUG)
    await sockets.signaling(two_party.id, two_party.caller)
    browser = sockets.communicator(
        f"{SIGNALING_PATH}?call_id={two_party.id}", subprotocols=["bearer", two_party.callees[0].token]
    )
    await browser.connect(timeout=5)
    bad = await sockets.connect_signaling(two_party.id, token=two_party.caller.token + "x")
    await expect_refusal(bad, 4401)
    query = sockets.communicator(f"{SIGNALING_PATH}?call_id={two_party.id}&access_token={two_party.caller.token}")
    await query.connect(timeout=5)
    await expect_refusal(query, 4400)
    await sockets.close_all()
    for token in (two_party.caller.token, two_party.callees[0].token):
        assert token not in caplog.text
        assert token.split(".")[2] not in caplog.text  # not even the signature
