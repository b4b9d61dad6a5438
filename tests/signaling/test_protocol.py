"""The wire protocol's schema, the handshake's pure checks, group names, rate buckets and which
call events go where: no sockets, no database."""

import json
import uuid

import pytest

from accounts.tokens import InvalidToken, TokenExpired
from calls.events import CallEvent, EventType
from calls.exceptions import CallNotFound, InvalidTransition, NotAParticipant, PersistenceUnavailable
from signaling import protocol
from signaling.authentication import bearer_token, call_id_from_query, origin_check
from signaling.call_events import event_deliveries
from signaling.groups import group_name
from signaling.layers import LayerUnavailable
from signaling.limits import TokenBucket
from signaling.protocol import ClientMessage, ProtocolError, Refused

pytestmark = pytest.mark.portable

ME, PEER = str(uuid.uuid4()), str(uuid.uuid4())
CALL = str(uuid.uuid4())


def parse(data, **kwargs):
    text = data if isinstance(data, str) else json.dumps(data)
    return protocol.parse_client_frame(text=text, binary=None, participant_ids=(ME, PEER), sender_id=ME, **kwargs)


def error_code(data, **kwargs) -> str:
    with pytest.raises(ProtocolError) as caught:
        parse(data, **kwargs)
    return caught.value.code


def test_every_client_type_is_in_the_one_schema():
    assert set(protocol.CLIENT_MESSAGES) == {
        "offer",
        "answer",
        "ice_candidate",
        "join",
        "leave",
        "mute_audio",
        "mute_video",
        "ping",
    }


def test_a_valid_message_keeps_only_its_schema_fields():
    message = parse({"type": "offer", "sdp": "v=0", "sender_id": "forged", "junk": 1, "target_id": PEER})
    assert message == ClientMessage("offer", PEER, {"sdp": "v=0"})


def test_target_ids_are_normalised():
    assert parse({"type": "leave", "target_id": PEER.upper()}).target_id == PEER


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"type": "offer", "sdp": None}, "missing_field"),
        ({"type": "mute_audio", "muted": 0}, "invalid_field"),
        ({"type": "ice_candidate", "candidate": ["a"]}, "invalid_field"),
        ({"type": "OFFER", "sdp": "v=0"}, "unknown_type"),
        ({"type": "offer", "sdp": "v=0", "target_id": 5}, "invalid_field"),
        ({"type": "offer", "sdp": "v=0", "target_id": ME}, "invalid_target"),
        ("null", "invalid_message"),
        ("", "invalid_json"),
        ("[" * 100000, "message_too_large"),
    ],
)
def test_the_first_problem_is_reported(data, code):
    assert error_code(data) == code


def test_a_message_over_64_kib_in_utf8_is_too_large_even_under_64_ki_characters():
    text = json.dumps({"type": "offer", "sdp": "é" * 40000}, ensure_ascii=False)
    assert len(text) < protocol.MAX_MESSAGE_BYTES < len(text.encode())
    assert error_code(text) == "message_too_large"


def test_binary_frames_are_refused():
    with pytest.raises(ProtocolError) as caught:
        protocol.parse_client_frame(text=None, binary=b"x", participant_ids=(), sender_id=ME)
    assert caught.value.code == "binary_not_supported"


def test_a_socket_can_narrow_the_types_it_takes():
    assert parse({"type": "ping"}, allowed_types={"ping"}).type == "ping"
    assert error_code({"type": "offer", "sdp": "v=0"}, allowed_types={"ping"}) == "unknown_type"


def test_relayed_messages_are_stamped_by_the_server():
    out = protocol.relayed(ClientMessage("mute_audio", None, {"muted": True}), call_id=CALL, sender_id=ME)
    assert out["sender_id"] == ME and out["call_id"] == CALL and out["muted"] is True
    assert out["timestamp"].endswith("Z") and "target_id" not in out


def test_mute_messages_map_to_the_call_media_fields():
    assert protocol.media_change(ClientMessage("mute_audio", None, {"muted": True})) == {"is_muted": True}
    assert protocol.media_change(ClientMessage("mute_video", None, {"muted": True})) == {"is_video_on": False}
    assert protocol.media_change(ClientMessage("offer", None, {"sdp": "v=0"})) == {}


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (Refused(protocol.BAD_REQUEST, "x"), 4400),
        (InvalidToken(), 4401),
        (TokenExpired(), 4401),
        (NotAParticipant(), 4403),
        (CallNotFound(), 4404),
        (InvalidTransition(), 4409),
        (Refused(protocol.TOO_MANY_CONNECTIONS, "x"), 4429),
        (PersistenceUnavailable(), 4503),
        (LayerUnavailable(), 4503),
    ],
)
def test_each_domain_error_has_one_close_code(error, code):
    assert protocol.refusal_for(error).close.code == code


# --- handshake ---------------------------------------------------------------------------------------


def scope(query=b"", headers=(), subprotocols=()):
    return {"query_string": query, "headers": list(headers), "subprotocols": list(subprotocols)}


def test_the_header_token_wins_over_the_subprotocol():
    both = scope(headers=[(b"authorization", b"Bearer from-header")], subprotocols=["bearer", "from-protocol"])
    assert bearer_token(both) == "from-header"
    assert bearer_token(scope(subprotocols=["json", "bearer", "from-protocol"])) == "from-protocol"


def test_a_bearer_subprotocol_without_a_token_is_refused():
    with pytest.raises(Refused) as caught:
        bearer_token(scope(subprotocols=["bearer"]))
    assert caught.value.close.code == 4401


def test_call_id_must_be_one_uuid():
    assert call_id_from_query(scope(f"call_id={CALL}".encode())) == CALL
    for query in (b"", b"call_id=", f"call_id={CALL}&call_id={CALL}".encode(), b"call_id=abc"):
        with pytest.raises(Refused):
            call_id_from_query(scope(query))


def test_origins_compare_without_case_or_trailing_slash(settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://App.Example.com/"]
    settings.IS_PRODUCTION = True
    origin_check(scope(headers=[(b"origin", b"https://app.example.com")]))
    with pytest.raises(Refused):
        origin_check(scope(headers=[(b"origin", b"https://app.example.com.evil.test")]))
    with pytest.raises(Refused):
        origin_check(scope(headers=[(b"origin", b"null")]))


# --- groups, buckets, events -----------------------------------------------------------------------------


def test_group_names_come_from_one_function():
    assert group_name(call_id=CALL) == f"call.{CALL}"
    assert group_name(user_id=ME) == f"user.{ME}"
    assert group_name(call_id=CALL, user_id=ME) == f"call.{CALL}.user.{ME}"
    assert len(group_name(call_id=CALL, user_id=ME)) < 100
    with pytest.raises(ValueError):
        group_name()


def test_a_token_bucket_allows_its_burst_then_its_rate():
    now = [0.0]
    bucket = TokenBucket(rate=2, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] = 0.5
    assert bucket.take() and not bucket.take()
    now[0] = 100
    assert sum(bucket.take() for _ in range(10)) == 3


def call_dict(status="ringing"):
    return {
        "call_id": CALL,
        "conversation_id": str(uuid.uuid4()),
        "caller_id": ME,
        "call_type": "audio",
        "status": status,
        "end_reason": "",
        "participants": [
            {"user_id": ME, "role": "caller", "state": "joined"},
            {"user_id": PEER, "role": "callee", "state": "ringing"},
        ],
    }


def test_incoming_call_goes_to_ringing_callees_only():
    event = CallEvent(EventType.INCOMING_CALL, call_dict(), (ME, PEER), actor_id=ME)
    assert [group for group, _ in event_deliveries(event)] == [f"user.{PEER}"]


def test_call_ended_goes_to_every_participant_and_to_the_call():
    event = CallEvent(EventType.CALL_ENDED, call_dict("ended"), (ME, PEER), actor_id=ME, reason="hangup")
    deliveries = event_deliveries(event)
    assert [group for group, _ in deliveries] == [f"user.{ME}", f"user.{PEER}", f"call.{CALL}"]
    assert deliveries[-1][1] == {"type": "call.ended", "reason": "hangup", "status": "ended"}


def test_media_and_leave_events_reach_no_events_socket():
    for event_type in (EventType.MEDIA_CHANGED, EventType.PARTICIPANT_LEFT):
        assert event_deliveries(CallEvent(event_type, call_dict("active"), (ME, PEER))) == []
