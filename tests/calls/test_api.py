"""The calls and conversations REST API: the wire format, authorization on every endpoint,
bad input, conflicts, history, analytics and ICE servers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from calls.models import Call, CallParticipant
from tests.factories import api_client_for, make_call, make_conversation, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    caller, callee, stranger = make_user(), make_user(), make_user()
    conversation = make_conversation(members=[caller, callee])
    return caller, callee, stranger, conversation


def start_call(client, conversation, callees, call_type="video"):
    return client.post(
        "/v1/calls/initiate",
        {"call_type": call_type, "conversation_id": str(conversation.id), "callee_ids": [str(c.id) for c in callees]},
        format="json",
    )


def error_code(response) -> str:
    body = response.json()
    assert body["success"] is False
    return body["error"]["code"]


# --- the happy path and the wire format ----------------------------------------------------------


def test_initiate_answers_201_with_the_call_in_the_envelope(people):
    caller, callee, _, conversation = people
    response = start_call(api_client_for(caller), conversation, [callee])
    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True and body["meta"]["request_id"] and body["meta"]["timestamp"]
    call = body["data"]
    assert call["status"] == "ringing" and call["caller_id"] == str(caller.id)
    assert call["conversation_id"] == str(conversation.id) and call["call_type"] == "video"
    assert {(p["user_id"], p["role"], p["state"]) for p in call["participants"]} == {
        (str(caller.id), "caller", "joined"),
        (str(callee.id), "callee", "ringing"),
    }
    assert "X-Persistence" not in response.headers and "persistence" not in body["meta"]


def test_the_whole_lifecycle_over_rest(people):
    caller, callee, _, conversation = people
    call_id = start_call(api_client_for(caller), conversation, [callee]).json()["data"]["call_id"]
    joined = api_client_for(callee).post(f"/v1/calls/{call_id}/join")
    assert joined.status_code == 200 and joined.json()["data"]["status"] == "active"
    again = api_client_for(callee).post(f"/v1/calls/{call_id}/join")
    assert again.status_code == 200 and again.json()["data"] == joined.json()["data"]
    ended = api_client_for(caller).post(f"/v1/calls/{call_id}/end", {"reason": "hangup"}, format="json")
    assert ended.status_code == 200
    data = ended.json()["data"]
    assert (data["status"], data["end_reason"]) == ("ended", "hangup") and data["ended_at"]
    assert api_client_for(callee).post(f"/v1/calls/{call_id}/end").json()["data"] == data


def test_decline_and_leave(people):
    caller, callee, _, conversation = people
    call_id = start_call(api_client_for(caller), conversation, [callee]).json()["data"]["call_id"]
    declined = api_client_for(callee).post(f"/v1/calls/{call_id}/decline")
    assert declined.status_code == 200 and declined.json()["data"]["status"] == "declined"
    second = start_call(api_client_for(caller), conversation, [callee]).json()["data"]["call_id"]
    api_client_for(callee).post(f"/v1/calls/{second}/join")
    left = api_client_for(callee).post(f"/v1/calls/{second}/leave")
    assert left.status_code == 200 and left.json()["data"]["status"] == "ended"


# --- authorization: every endpoint ---------------------------------------------------------------

CALL_ENDPOINTS = [
    ("get", "/v1/calls/{id}"),
    ("post", "/v1/calls/{id}/join"),
    ("post", "/v1/calls/{id}/decline"),
    ("post", "/v1/calls/{id}/leave"),
    ("post", "/v1/calls/{id}/end"),
]
ALL_ENDPOINTS = [
    *CALL_ENDPOINTS,
    ("post", "/v1/calls/initiate"),
    ("get", "/v1/calls"),
    ("get", "/v1/calls/analytics"),
    ("get", "/v1/calls/ice-servers"),
    ("get", "/v1/conversations"),
    ("post", "/v1/conversations"),
    ("get", "/v1/conversations/{conversation}"),
]


@pytest.mark.parametrize(("method", "path"), ALL_ENDPOINTS)
@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic dXNlcjpwYXNz"])
def test_every_endpoint_needs_a_valid_token(people, method, path, authorization):
    caller, callee, _, conversation = people
    call = make_call(caller=caller, callees=[callee], conversation=conversation)
    client = APIClient()
    if authorization:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    response = getattr(client, method)(path.format(id=call.id, conversation=conversation.id))
    assert response.status_code == 401 and error_code(response) == "UNAUTHORIZED"


@pytest.mark.parametrize(("method", "path"), CALL_ENDPOINTS)
def test_a_stranger_cannot_see_or_touch_a_call(people, method, path):
    caller, callee, stranger, conversation = people
    call = make_call(caller=caller, callees=[callee], conversation=conversation)
    response = getattr(api_client_for(stranger), method)(path.format(id=call.id))
    assert response.status_code == 404 and error_code(response) == "NOT_FOUND"
    assert Call.objects.get(pk=call.id).status == "ringing"


def test_a_stranger_cannot_see_a_conversation(people):
    _, _, stranger, conversation = people
    response = api_client_for(stranger).get(f"/v1/conversations/{conversation.id}")
    assert response.status_code == 404 and error_code(response) == "NOT_FOUND"
    assert api_client_for(stranger).get("/v1/conversations").json()["data"]["conversations"] == []


def test_a_stranger_cannot_start_a_call_in_someone_elses_conversation(people):
    caller, callee, stranger, conversation = people
    response = start_call(api_client_for(stranger), conversation, [callee])
    assert response.status_code == 403 and error_code(response) == "FORBIDDEN"
    response = start_call(api_client_for(caller), conversation, [stranger])
    assert response.status_code == 403 and response.json()["error"]["details"]["callee_ids"] == [str(stranger.id)]
    assert Call.objects.count() == 0


def test_a_stranger_does_not_see_others_calls_in_history_or_analytics(people):
    caller, callee, stranger, conversation = people
    make_call(caller=caller, callees=[callee], conversation=conversation, talk_seconds=20)
    assert api_client_for(stranger).get("/v1/calls").json()["data"] == {"calls": [], "next_cursor": None}
    assert api_client_for(stranger).get("/v1/calls/analytics").json()["data"]["total"] == 0


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"call_type": "hologram", "conversation_id": "{conv}", "callee_ids": ["{callee}"]}, "call_type"),
        ({"call_type": "video", "conversation_id": "not-a-uuid", "callee_ids": ["{callee}"]}, "conversation_id"),
        ({"call_type": "video", "conversation_id": "{conv}", "callee_ids": "{callee}"}, "callee_ids"),
        ({"call_type": "video", "conversation_id": "{conv}", "callee_ids": []}, "callee_ids"),
        ({"call_type": "video", "conversation_id": "{conv}", "callee_ids": ["nope"]}, "callee_ids"),
        ({"call_type": "video", "conversation_id": "{conv}", "callee_ids": ["{callee}", "{callee}"]}, "callee_ids"),
        ({"call_type": "video", "conversation_id": "{conv}", "callee_ids": ["{caller}"]}, "callee_ids"),
        ({"call_type": 7, "conversation_id": "{conv}", "callee_ids": ["{callee}"]}, "call_type"),
        ({"conversation_id": "{conv}", "callee_ids": ["{callee}"]}, "call_type"),
    ],
)
def test_initiate_validation_errors_name_the_field(people, body, field):
    caller, callee, _, conversation = people

    def fill(value):
        if isinstance(value, str):
            return value.format(conv=conversation.id, callee=callee.id, caller=caller.id)
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    response = api_client_for(caller).post("/v1/calls/initiate", {k: fill(v) for k, v in body.items()}, format="json")
    assert response.status_code == 400 and error_code(response) == "VALIDATION_ERROR"
    assert field in response.json()["error"]["details"]
    assert Call.objects.count() == 0


def test_validation_comes_before_authorization(people):
    """400 before 404/403: a bad body from a non-member is still a validation error."""
    _, _, stranger, conversation = people
    response = api_client_for(stranger).post(
        "/v1/calls/initiate", {"call_type": "x", "conversation_id": str(conversation.id)}, format="json"
    )
    assert response.status_code == 400


def test_unknown_fields_are_ignored(people):
    caller, callee, _, conversation = people
    response = api_client_for(caller).post(
        "/v1/calls/initiate",
        {"call_type": "audio", "conversation_id": str(conversation.id), "callee_ids": [str(callee.id)], "x": 1},
        format="json",
    )
    assert response.status_code == 201


@pytest.mark.parametrize("path", ["/v1/calls/not-a-uuid", "/v1/calls/123/join", "/v1/conversations/zzz"])
def test_bad_ids_in_the_path_are_validation_errors(people, path):
    caller, *_ = people
    client = api_client_for(caller)
    response = client.post(path) if path.endswith("join") else client.get(path)
    assert response.status_code == 400 and error_code(response) == "VALIDATION_ERROR"


def test_malformed_json_is_a_validation_error(people):
    caller, *_ = people
    response = api_client_for(caller).post("/v1/calls/initiate", data="{not json", content_type="application/json")
    assert response.status_code == 400 and error_code(response) == "VALIDATION_ERROR"


@pytest.mark.parametrize("body", ["[]", '["hangup"]', '"hangup"', "null", "1"])
def test_ending_with_a_body_that_is_not_an_object_is_a_validation_error(people, body):
    caller, callee, _, conversation = people
    client = api_client_for(caller)
    call_id = start_call(client, conversation, [callee]).json()["data"]["call_id"]

    response = client.post(f"/v1/calls/{call_id}/end", data=body, content_type="application/json")

    assert response.status_code == 400 and error_code(response) == "VALIDATION_ERROR"
    assert Call.objects.get(pk=call_id).status == Call.Status.RINGING


def test_ending_without_a_body_is_fine(people):
    caller, callee, _, conversation = people
    client = api_client_for(caller)
    call_id = start_call(client, conversation, [callee]).json()["data"]["call_id"]

    response = client.post(f"/v1/calls/{call_id}/end")

    assert response.status_code == 200 and response.json()["data"]["status"] == "cancelled"


def test_unknown_call_is_not_found(people):
    caller, *_ = people
    response = api_client_for(caller).get(f"/v1/calls/{uuid.uuid4()}")
    assert response.status_code == 404


# --- conflicts -----------------------------------------------------------------------------------


def test_a_second_call_in_the_conversation_is_409_with_the_live_calls_id(people):
    caller, callee, _, conversation = people
    first = start_call(api_client_for(caller), conversation, [callee]).json()["data"]["call_id"]
    response = start_call(api_client_for(callee), conversation, [caller])
    assert response.status_code == 409 and error_code(response) == "CONFLICT"
    assert response.json()["error"]["details"]["call_id"] == first


def test_joining_an_ended_call_is_409(people):
    caller, callee, _, conversation = people
    call_id = start_call(api_client_for(caller), conversation, [callee]).json()["data"]["call_id"]
    api_client_for(caller).post(f"/v1/calls/{call_id}/end")
    response = api_client_for(callee).post(f"/v1/calls/{call_id}/join")
    assert response.status_code == 409 and error_code(response) == "CONFLICT"


def test_joining_a_full_call_is_409(people, settings):
    caller, callee, _, conversation = people
    call_id = start_call(api_client_for(caller), conversation, [callee]).json()["data"]["call_id"]
    settings.MAX_CALL_PARTICIPANTS = 1  # lowered after the call started
    response = api_client_for(callee).post(f"/v1/calls/{call_id}/join")
    assert response.status_code == 409 and error_code(response) == "CONFLICT"


def test_initiate_is_rate_limited_per_caller(people, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "call_initiate": "2/min"},
    }
    caller, callee, _, conversation = people
    client = api_client_for(caller)
    codes = []
    for _ in range(3):
        response = start_call(client, conversation, [callee])
        codes.append(response.status_code)
        if response.status_code == 201:
            client.post(f"/v1/calls/{response.json()['data']['call_id']}/end")
    assert codes == [201, 201, 429]


# --- ringing timeout on read ---------------------------------------------------------------------


def test_reading_a_call_past_its_ring_timeout_shows_it_missed(people, settings):
    settings.CALL_RING_TIMEOUT = 10
    caller, callee, _, conversation = people
    call = make_call(
        caller=caller, callees=[callee], conversation=conversation, started_at=timezone.now() - timedelta(seconds=11)
    )
    data = api_client_for(callee).get(f"/v1/calls/{call.id}").json()["data"]
    assert (data["status"], data["end_reason"]) == ("missed", "no_answer")


# --- history -------------------------------------------------------------------------------------


def test_history_lists_my_calls_newest_first_each_once_with_a_cursor(people):
    caller, callee, _, conversation = people
    now = timezone.now()
    calls = [
        make_call(
            caller=caller if i % 2 else callee,
            callees=[callee if i % 2 else caller],
            conversation=conversation,
            started_at=now - timedelta(minutes=i),
            talk_seconds=5,
        )
        for i in range(5)
    ]
    client = api_client_for(caller)
    first = client.get("/v1/calls", {"limit": 2}).json()["data"]
    second = client.get("/v1/calls", {"limit": 2, "cursor": first["next_cursor"]}).json()["data"]
    third = client.get("/v1/calls", {"limit": 2, "cursor": second["next_cursor"]}).json()["data"]
    seen = [c["call_id"] for page in (first, second, third) for c in page["calls"]]
    assert seen == [str(c.id) for c in calls]
    assert third["next_cursor"] is None


def test_history_filters(people):
    caller, callee, _, conversation = people
    now = timezone.now()
    outgoing = make_call(
        caller=caller,
        callees=[callee],
        conversation=conversation,
        call_type="audio",
        started_at=now - timedelta(hours=2),
        talk_seconds=5,
    )
    incoming = make_call(
        caller=callee, callees=[caller], conversation=conversation, started_at=now - timedelta(hours=1)
    )
    client = api_client_for(caller)

    def ids(**params):
        return [c["call_id"] for c in client.get("/v1/calls", params).json()["data"]["calls"]]

    assert ids(direction="outgoing") == [str(outgoing.id)]
    assert ids(direction="incoming") == [str(incoming.id)]
    assert ids(call_type="audio") == [str(outgoing.id)]
    assert ids(status="ringing") == [str(incoming.id)]
    assert ids(since=(now - timedelta(minutes=90)).isoformat()) == [str(incoming.id)]
    assert ids(until=(now - timedelta(minutes=90)).isoformat()) == [str(outgoing.id)]
    assert ids(conversation_id=str(uuid.uuid4())) == []


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "x"},
        {"cursor": "garbage!"},
        {"direction": "sideways"},
        {"since": "yesterday"},
        {"status": "exploded"},
    ],
)
def test_history_rejects_bad_parameters(people, params):
    caller, *_ = people
    response = api_client_for(caller).get("/v1/calls", params)
    assert response.status_code == 400 and error_code(response) == "VALIDATION_ERROR"


def test_history_walks_the_participant_index(people):
    """The plan of the history query uses the (user, call_started_at, call) index."""
    caller, callee, _, conversation = people
    make_call(caller=caller, callees=[callee], conversation=conversation)
    with transaction.atomic(), connection.cursor() as cursor:
        # Tiny tables: ask what the planner *can* use for a large one.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        plan = CallParticipant.objects.filter(user_id=caller.id).order_by("-call_started_at", "-call_id")[:21].explain()
    assert "call_participant_history" in plan
    assert "Sort" not in plan.split("call_participant_history")[0], plan


# --- analytics -----------------------------------------------------------------------------------


def test_analytics_find_my_calls_through_the_participant_index(people):
    from calls.selectors import analytics_calls

    caller, callee, _, conversation = people
    make_call(caller=caller, callees=[callee], conversation=conversation)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        rows, _ = analytics_calls(user_id=caller.id, since=timezone.now() - timedelta(days=1))
        plan = rows.explain()
    assert "call_participant_history" in plan, plan


def test_analytics_aggregates_my_calls(people):
    caller, callee, _, conversation = people
    for seconds in (10, 20, 30, 40):
        make_call(caller=caller, callees=[callee], conversation=conversation, talk_seconds=seconds)
    make_call(caller=caller, callees=[callee], conversation=conversation, status="missed")
    data = api_client_for(caller).get("/v1/calls/analytics").json()["data"]
    assert data["total"] == 5 and data["answered"] == 4 and data["missed"] == 1
    assert data["answer_rate"] == 0.8
    assert data["by_status"]["ended"] == 4 and data["by_status"]["missed"] == 1
    assert data["by_type"] == {"audio": 0, "video": 5}
    assert data["avg_duration_seconds"] == 25.0 and data["total_talk_seconds"] == 100
    assert (data["p50_duration_seconds"], data["p95_duration_seconds"]) == (20, 40)


def test_analytics_with_no_calls(people):
    caller, *_ = people
    data = api_client_for(caller).get("/v1/calls/analytics").json()["data"]
    assert data["total"] == 0 and data["answer_rate"] == 0.0 and data["p95_duration_seconds"] == 0


def test_analytics_since_until_window(people):
    caller, callee, _, conversation = people
    now = timezone.now()
    make_call(
        caller=caller, callees=[callee], conversation=conversation, started_at=now - timedelta(days=3), talk_seconds=5
    )
    make_call(caller=caller, callees=[callee], conversation=conversation, talk_seconds=7)
    data = api_client_for(caller).get("/v1/calls/analytics", {"since": (now - timedelta(days=1)).isoformat()})
    assert data.json()["data"]["total"] == 1
    bad = api_client_for(caller).get("/v1/calls/analytics", {"since": now.isoformat(), "until": now.isoformat()})
    assert bad.status_code == 400


# --- ICE servers ---------------------------------------------------------------------------------


def test_ice_servers_give_stun_and_ephemeral_turn_credentials(people, settings):
    settings.STUN_URLS = ["stun:stun.example.test:3478"]
    settings.TURN_URLS = ["turn:turn.example.test:3478?transport=udp", "turns:turn.example.test:5349"]
    settings.TURN_SECRET = ["current-secret", "previous-secret"]
    settings.TURN_TTL = 600
    caller, *_ = people
    before = int(timezone.now().timestamp())
    data = api_client_for(caller).get("/v1/calls/ice-servers").json()["data"]
    stun, turn = data["ice_servers"]
    assert stun == {"urls": ["stun:stun.example.test:3478"]} and data["ttl"] == 600
    expiry, user_id = turn["username"].split(":")
    assert user_id == str(caller.id) and before + 600 <= int(expiry) <= before + 602
    expected = base64.b64encode(hmac.new(b"current-secret", turn["username"].encode(), hashlib.sha1).digest())
    assert turn["credential"] == expected.decode()


def test_ice_servers_without_turn(people, settings):
    settings.STUN_URLS = []
    settings.TURN_URLS = []
    caller, *_ = people
    assert api_client_for(caller).get("/v1/calls/ice-servers").json()["data"] == {"ice_servers": [], "ttl": 600}


# --- conversations -------------------------------------------------------------------------------


def test_create_and_read_a_conversation(people):
    caller, callee, _, _ = people
    response = api_client_for(caller).post(
        "/v1/conversations", {"type": "direct", "member_ids": [str(callee.id)]}, format="json"
    )
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["created_by"] == str(caller.id)
    assert {(m["user_id"], m["role"]) for m in data["members"]} == {
        (str(caller.id), "admin"),
        (str(callee.id), "member"),
    }
    listed = api_client_for(callee).get("/v1/conversations").json()["data"]["conversations"]
    assert data["conversation_id"] in [c["conversation_id"] for c in listed]
    one = api_client_for(callee).get(f"/v1/conversations/{data['conversation_id']}").json()["data"]
    assert one == data


@pytest.mark.parametrize(
    "body",
    [
        {"type": "direct"},
        {"type": "pair", "member_ids": ["{callee}"]},
        {"type": "group", "member_ids": ["x"]},
        {"type": "group", "member_ids": []},
        {"type": "group", "member_ids": ["{callee}"], "title": "t" * 201},
        {"type": "direct", "member_ids": ["{caller}"]},
    ],
)
def test_conversation_validation(people, body):
    caller, callee, *_ = people
    ids = {"{callee}": str(callee.id), "{caller}": str(caller.id)}
    if "member_ids" in body:
        body = {**body, "member_ids": [ids.get(m, m) for m in body["member_ids"]]}
    response = api_client_for(caller).post("/v1/conversations", body, format="json")
    assert response.status_code == 400 and error_code(response) == "VALIDATION_ERROR"


def test_conversation_members_carry_their_names(people):
    caller, callee, _, conversation = people
    members = api_client_for(caller).get(f"/v1/conversations/{conversation.id}").json()["data"]["members"]
    assert {(m["user_id"], m["username"], m["display_name"]) for m in members} == {
        (str(caller.id), caller.username, caller.display_name),
        (str(callee.id), callee.username, callee.display_name),
    }


def test_the_root_sends_people_to_the_web_client(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/app/"
