"""The call timeline (calls.timeline, calls.services): what each write records, in order, within
the bound, and who may read it (``GET /v1/calls/{id}``)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from calls import events, services, timeline
from calls.models import Call, CallParticipant, CallTimelineEvent
from tests.factories import api_client_for, make_conversation, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.portable]


@pytest.fixture
def group():
    alice, bob, carol = (make_user(display_name=name) for name in ("Alice", "Bob", "Carol"))
    conversation = make_conversation(members=[alice, bob, carol])
    return alice, bob, carol, conversation


def initiate(caller, callees, conversation, call_type="video"):
    return services.call_initiate(
        caller_id=caller.id, conversation_id=conversation.id, callee_ids=[c.id for c in callees], call_type=call_type
    )


def detail(user, call_id):
    return api_client_for(user).get(f"/v1/calls/{call_id}")


def kinds_and_actors(data) -> list[tuple[str, str | None, str]]:
    return [(e["kind"], e["actor_id"], e["detail"]) for e in data["timeline"]]


def stored(call_id) -> list[tuple[str, str | None, str]]:
    return [
        (e.kind, str(e.actor_id) if e.actor_id else None, e.detail)
        for e in CallTimelineEvent.objects.filter(call_id=call_id).order_by("seq")
    ]


def test_the_call_detail_lists_what_happened_in_order(group):
    alice, bob, carol, conversation = group
    call_id = initiate(alice, [bob, carol], conversation).record.call.id
    services.call_join(call_id=call_id, user_id=bob.id)
    services.call_set_media(call_id=call_id, user_id=bob.id, is_muted=True)
    services.call_decline(call_id=call_id, user_id=carol.id)
    services.call_set_media(call_id=call_id, user_id=alice.id, is_video_on=False)
    services.call_leave(call_id=call_id, user_id=alice.id)  # two left, one of them goes: the call ends

    response = detail(alice, call_id)
    assert response.status_code == 200
    data = response.json()["data"]
    a, b, c = str(alice.id), str(bob.id), str(carol.id)
    assert kinds_and_actors(data) == [
        ("initiated", a, "video"),
        ("rang", b, ""),
        ("rang", c, ""),
        ("accepted", b, ""),
        ("audio_muted", b, ""),
        ("declined", c, ""),
        ("video_off", a, ""),
        ("left", a, "hangup"),
        ("ended", a, "hangup"),
    ]
    assert [e["seq"] for e in data["timeline"]] == list(range(9))
    times = [datetime.fromisoformat(e["at"]) for e in data["timeline"]]
    assert times == sorted(times) and all(e["at"].endswith("Z") for e in data["timeline"])
    assert times[0] == datetime.fromisoformat(data["started_at"])
    assert times[3] == datetime.fromisoformat(data["answered_at"])
    assert times[-1] == datetime.fromisoformat(data["ended_at"])
    assert stored(call_id) == kinds_and_actors(data), "the answer is what the database holds"


def test_every_participant_reads_the_same_timeline(group):
    alice, bob, carol, conversation = group
    call_id = initiate(alice, [bob, carol], conversation).record.call.id
    services.call_join(call_id=call_id, user_id=bob.id)
    answers = [detail(person, call_id).json()["data"]["timeline"] for person in (alice, bob, carol)]
    assert answers[0] == answers[1] == answers[2] and len(answers[0]) == 4


def test_strangers_get_the_same_answer_as_for_a_call_that_does_not_exist(group):
    alice, bob, carol, conversation = group
    stranger = make_user()
    call_id = initiate(alice, [bob], conversation).record.call.id
    theirs = detail(stranger, call_id)
    nobodys = detail(stranger, uuid.uuid4())
    assert theirs.status_code == nobodys.status_code == 404
    strip = lambda body: {k: v for k, v in body.items() if k != "meta"}  # noqa: E731 (request ids differ)
    assert strip(theirs.json()) == strip(nobodys.json())
    assert "timeline" not in theirs.content.decode() and str(alice.id) not in theirs.content.decode()
    # A member of the conversation who is not in this call is a stranger to it too.
    assert detail(carol, call_id).status_code == 404


def test_the_ringing_timeout_is_the_services_own_decision(group, settings):
    alice, bob, carol, conversation = group
    call = initiate(alice, [bob, carol], conversation).record.call
    services.call_join(call_id=call.id, user_id=bob.id)
    later = call.started_at + timedelta(seconds=settings.CALL_RING_TIMEOUT + 1)
    services.call_expire(call_id=call.id, now=later)  # Carol never answered; Alice and Bob talk on
    services.call_end(call_id=call.id, user_id=bob.id)
    assert stored(call.id)[3:] == [
        ("accepted", str(bob.id), ""),
        ("missed", str(carol.id), ""),
        ("ended", str(bob.id), "hangup"),
    ]
    missed = CallTimelineEvent.objects.get(call_id=call.id, kind="missed")
    assert missed.at == call.started_at + timedelta(seconds=settings.CALL_RING_TIMEOUT), "at the deadline"

    nobody = initiate(alice, [carol], make_conversation(members=[alice, carol])).record.call
    services.call_expire(call_id=nobody.id, now=later)
    assert stored(nobody.id)[-2:] == [("missed", str(carol.id), ""), ("ended", None, "no_answer")]


def test_a_cancelled_call_says_who_cancelled_and_whose_ringing_stopped(group):
    alice, bob, _, conversation = group
    call_id = initiate(alice, [bob], conversation).record.call.id
    services.call_end(call_id=call_id, user_id=alice.id)
    assert stored(call_id) == [
        ("initiated", str(alice.id), "video"),
        ("rang", str(bob.id), ""),
        ("missed", str(bob.id), ""),
        ("ended", str(alice.id), "cancelled"),
    ]


def test_a_rejoin_and_a_repeated_write_record_what_really_changed(group):
    alice, bob, carol, conversation = group
    call_id = initiate(alice, [bob, carol], conversation).record.call.id
    services.call_join(call_id=call_id, user_id=bob.id)
    services.call_join(call_id=call_id, user_id=carol.id)
    services.call_join(call_id=call_id, user_id=carol.id)  # idempotent: nothing new
    services.call_set_media(call_id=call_id, user_id=carol.id, is_muted=False)  # already unmuted
    services.call_leave(call_id=call_id, user_id=carol.id)
    services.call_join(call_id=call_id, user_id=carol.id)
    assert [kind for kind, _, _ in stored(call_id)][3:] == ["accepted", "accepted", "left", "rejoined"]


def test_connections_are_recorded_and_a_loss_for_good_ends_the_call(settings):
    settings.CALL_RECONNECT_GRACE = 0.2
    alice, bob = make_user(), make_user()
    call_id = initiate(alice, [bob], make_conversation(members=[alice, bob])).record.call.id
    services.call_join(call_id=call_id, user_id=bob.id)
    for person in (alice, bob):
        assert services.call_record_connection(call_id=call_id, user_id=person.id, kind="connected")
    dropped = time.time() - 30
    assert services.call_record_connection(call_id=call_id, user_id=bob.id, kind="reconnecting", at=dropped - 20)
    assert services.call_record_connection(call_id=call_id, user_id=bob.id, kind="resumed", at=dropped - 19)
    assert services.call_record_connection(call_id=call_id, user_id=bob.id, kind="reconnecting", at=dropped)
    # Bob's socket never came back; Alice's is live (presence: this process's memory in tests).
    from calls import presence

    presence.presence_socket_opened(call_id=call_id, user_id=alice.id, channel_name="c!alice")
    presence.presence_socket_opened(call_id=call_id, user_id=bob.id, channel_name="c!bob", now=dropped)
    presence.presence_socket_dropped(call_id=call_id, user_id=bob.id, channel_name="c!bob", at=dropped, hold_until=None)
    time.sleep(0.3)  # the grace runs from the join at the latest
    assert services.call_connections_check(call_id=call_id) is not None
    a, b = str(alice.id), str(bob.id)
    assert stored(call_id)[3:] == [
        ("connected", a, ""),
        ("connected", b, ""),
        ("reconnecting", b, ""),
        ("resumed", b, ""),
        ("reconnecting", b, ""),
        ("connection_lost", b, "connection_lost"),
        ("ended", b, "connection_lost"),
    ]
    events_by_kind = {e.kind: e for e in CallTimelineEvent.objects.filter(call_id=call_id)}
    assert events_by_kind["connection_lost"].at == CallParticipant.objects.get(call_id=call_id, user=bob).left_at
    assert events_by_kind["ended"].at == Call.objects.get(pk=call_id).ended_at


def test_connection_events_of_an_ended_call_or_a_stranger_are_not_recorded(group):
    alice, bob, carol, conversation = group
    call_id = initiate(alice, [bob], conversation).record.call.id
    assert services.call_record_connection(call_id=call_id, user_id=carol.id, kind="connected") is None
    assert services.call_record_connection(call_id=uuid.uuid4(), user_id=carol.id, kind="connected") is None
    services.call_end(call_id=call_id, user_id=alice.id)
    before = stored(call_id)
    assert services.call_record_connection(call_id=call_id, user_id=bob.id, kind="reconnecting") is None
    assert stored(call_id) == before and before[-1][0] == "ended"
    with pytest.raises(ValueError):
        services.call_record_connection(call_id=call_id, user_id=bob.id, kind="ended")


def test_the_timeline_is_bounded_with_one_truncated_marker_and_still_says_how_it_ended(group):
    alice, bob, _, conversation = group
    call_id = initiate(alice, [bob], conversation).record.call.id
    services.call_join(call_id=call_id, user_id=bob.id)
    for i in range(timeline.MAX_EVENTS + 20):
        services.call_set_media(call_id=call_id, user_id=bob.id, is_muted=i % 2 == 0)
    assert CallTimelineEvent.objects.filter(call_id=call_id).count() == timeline.MAX_EVENTS - 1
    services.call_leave(call_id=call_id, user_id=bob.id)
    rows = stored(call_id)
    assert len(rows) == timeline.MAX_EVENTS
    assert [kind for kind, _, _ in rows].count("truncated") == 1
    assert rows[-2] == ("truncated", None, "") and rows[-1] == ("ended", str(bob.id), "hangup")
    assert rows[-3][0] in ("audio_muted", "audio_unmuted")
    data = detail(alice, call_id).json()["data"]
    assert len(data["timeline"]) == timeline.MAX_EVENTS and data["timeline"][-1]["kind"] == "ended"


def test_event_ids_come_from_the_call_and_the_position(group):
    alice, bob, _, conversation = group
    call_id = initiate(alice, [bob], conversation).record.call.id
    for event in CallTimelineEvent.objects.filter(call_id=call_id):
        assert event.id == timeline.event_id(call_id, event.seq)
    assert timeline.event_id(call_id, 0) != timeline.event_id(call_id, 1)


def test_only_the_one_call_answer_carries_the_timeline(group, django_capture_on_commit_callbacks):
    alice, bob, _, conversation = group
    heard = []
    events.subscribe(heard.append)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            started = api_client_for(alice).post(
                "/v1/calls/initiate",
                {"call_type": "audio", "conversation_id": str(conversation.id), "callee_ids": [str(bob.id)]},
                format="json",
            )
    finally:
        events.unsubscribe(heard.append)
    assert started.status_code == 201 and "timeline" not in started.json()["data"]
    assert heard and all("timeline" not in event.call for event in heard), "socket and push payloads stay small"
    history = api_client_for(alice).get("/v1/calls").json()["data"]["calls"]
    assert history and all("timeline" not in call for call in history)
    call_id = started.json()["data"]["call_id"]
    assert [e["kind"] for e in detail(alice, call_id).json()["data"]["timeline"]] == ["initiated", "rang"]


def test_a_call_from_before_the_timeline_has_an_empty_one(group):
    alice, bob, _, conversation = group
    call = Call.objects.create(
        conversation=conversation, caller=alice, started_at=timezone.now(), status=Call.Status.RINGING
    )
    for user, role, state in ((alice, "caller", "joined"), (bob, "callee", "ringing")):
        CallParticipant.objects.create(call=call, user=user, role=role, state=state, call_started_at=call.started_at)
    assert detail(alice, call.id).json()["data"]["timeline"] == []
    services.call_join(call_id=call.id, user_id=bob.id)
    assert stored(call.id) == [("accepted", str(bob.id), "")], "it starts with the next write"


def test_the_schema_documents_the_timeline_as_answered(group):
    from openapi_schema_validator import OAS30Validator

    alice, bob, _, conversation = group
    call_id = initiate(alice, [bob], conversation).record.call.id
    services.call_join(call_id=call_id, user_id=bob.id)
    spec = api_client_for(alice).get("/v1/schema", {"format": "json"}).json()
    documented = spec["paths"]["/v1/calls/{call_id}"]["get"]["responses"]["200"]["content"]["application/json"]
    OAS30Validator({**documented["schema"], "components": spec["components"]}).validate(detail(alice, call_id).json())
    detail_component = next(c for name, c in spec["components"]["schemas"].items() if name.startswith("CallDetail"))
    assert "timeline" in detail_component["properties"] and "timeline" in detail_component["required"]
    event = next(c for name, c in spec["components"]["schemas"].items() if name.startswith("TimelineEvent"))
    assert set(event["properties"]) == {"seq", "at", "kind", "actor_id", "detail"}


def test_snapshot_encoding_keeps_the_timeline():
    from calls.persistence.snapshots import decode_call, encode_call

    call = Call(id=uuid.uuid4(), conversation_id=uuid.uuid4(), caller_id=uuid.uuid4(), started_at=timezone.now())
    events_so_far: list = []
    timeline.append(events_so_far, call_id=call.id, kind="connected", at=datetime(2026, 1, 2, 3, 4, 5, 678901, UTC))
    _, _, decoded = decode_call(encode_call(call, [], events_so_far))
    assert [(e.id, e.seq, e.at, e.kind) for e in decoded] == [(e.id, e.seq, e.at, e.kind) for e in events_so_far]
    assert decode_call({"call": encode_call(call, [])["call"], "participants": []})[2] == [], "an old entry"
