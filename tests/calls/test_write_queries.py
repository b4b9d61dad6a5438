"""What a call write sends to the database and the snapshot cache: the REST path's cost, pinned
(docs/benchmarks.md, "Issue 17: the lean write path"). A write reads only what its rules need and
writes only the rows it changed."""

import re
from collections import Counter

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from calls import services
from calls.exceptions import CallAlreadyLive
from calls.models import Call, CallParticipant
from calls.persistence import snapshot_cache
from core.compiled_sql import statements_in
from tests.factories import make_conversation, make_user
from tests.support.counting import count_outermost_calls

pytestmark = pytest.mark.django_db(transaction=True)


def sent(queries) -> list[list[str]]:
    """The SQL of each round trip, split into its statements: those sent together
    (``core.compiled_sql.one_round_trip``, a ``CompiledRead`` with a lock) one by one."""
    trips = []
    for query in queries.captured_queries:
        sql = query["sql"]
        if sql.split()[0].upper() in ("SAVEPOINT", "RELEASE", "ROLLBACK"):
            continue
        trips.append(statements_in(sql))
    return trips


def statements(queries) -> Counter:
    """Statements by verb and table, e.g. ("UPDATE", "calls_callparticipant")."""
    counted = Counter()
    for trip in sent(queries):
        for sql in trip:
            verb = sql.split()[0].upper().lstrip("(")
            table = sql.split('"')[1] if '"' in sql else ""
            counted[(verb, table)] += 1
    return counted


@pytest.fixture
def cache_writes(monkeypatch):
    return count_outermost_calls(monkeypatch, cache, ("set", "set_many"))


def test_starting_a_call_reads_the_conversation_once_and_inserts_the_call_its_people_and_timeline(cache_writes):
    caller, callee = make_user(), make_user()
    conversation = make_conversation(members=[caller, callee])
    with CaptureQueriesContext(connection) as queries:
        result = services.call_initiate(
            caller_id=caller.id, conversation_id=conversation.id, callee_ids=[callee.id], call_type="video"
        )
    assert statements(queries) == {
        ("BEGIN", ""): 1,
        ("SELECT", "calls_conversationparticipant"): 1,  # its members and its live calls, one UNION ALL
        ("INSERT", "calls_call"): 1,
        ("INSERT", "calls_callparticipant"): 1,
        ("INSERT", "calls_calltimelineevent"): 1,
        ("COMMIT", ""): 1,
    }
    # the three INSERTs in one round trip, one after another
    assert [len(trip) for trip in sent(queries)] == [1, 1, 3, 1]
    # the call's snapshot and the conversation's members, in one round trip (a SET ... EX each)
    assert cache_writes == ["set_many"]
    assert sorted(snapshot_cache.cached_members(conversation.id)) == sorted([str(caller.id), str(callee.id)])
    assert snapshot_cache.cached_call(result.record.call.id)["call"]["status"] == Call.Status.RINGING


def test_the_union_still_finds_a_live_call_and_refuses_a_second(cache_writes):
    caller, callee = make_user(), make_user()
    conversation = make_conversation(members=[caller, callee])
    first = services.call_initiate(
        caller_id=caller.id, conversation_id=conversation.id, callee_ids=[callee.id], call_type="audio"
    )
    with pytest.raises(CallAlreadyLive) as refused:
        services.call_initiate(
            caller_id=callee.id, conversation_id=conversation.id, callee_ids=[caller.id], call_type="audio"
        )
    assert refused.value.details == {"call_id": str(first.record.call.id)}


def ringing_video_call():
    """(caller, callee, the call ringing between them)."""
    caller, callee = make_user(), make_user()
    conversation = make_conversation(members=[caller, callee])
    call = services.call_initiate(
        caller_id=caller.id, conversation_id=conversation.id, callee_ids=[callee.id], call_type="video"
    ).record.call
    return caller, callee, call


def test_answering_updates_only_the_participant_who_answered(cache_writes):
    caller, callee, call = ringing_video_call()
    caller_row = CallParticipant.objects.get(call=call, user=caller)
    cache_writes.clear()
    with CaptureQueriesContext(connection) as queries:
        services.call_join(call_id=call.id, user_id=callee.id)
    assert statements(queries) == {
        ("BEGIN", ""): 1,
        ("SELECT", "calls_call"): 1,  # its row locked
        ("SELECT", "calls_callparticipant"): 1,  # with the call and its timeline
        ("UPDATE", "calls_call"): 1,
        ("UPDATE", "calls_callparticipant"): 1,  # the callee's row; the caller's did not change
        ("INSERT", "calls_calltimelineevent"): 1,
        ("COMMIT", ""): 1,
    }
    # BEGIN, the lock then the read, the changes in one WITH statement, COMMIT
    trips = sent(queries)
    assert [len(trip) for trip in trips] == [1, 2, 3, 1]
    lock, read = trips[1]
    assert re.fullmatch(r'SELECT "calls_call"\."id"( AS "pk")? FROM "calls_call" WHERE .* FOR UPDATE', lock), lock
    assert "FOR UPDATE" not in read and "calls_calltimelineevent" in read  # read after the lock was granted
    assert CallParticipant.objects.get(call=call, user=callee).state == CallParticipant.State.JOINED
    assert CallParticipant.objects.get(call=call, user=caller).joined_at == caller_row.joined_at
    # the call's snapshot alone: one SET with its expiry, no pipeline
    assert cache_writes == ["set"]
    assert snapshot_cache.cached_call(call.id)["call"]["status"] == Call.Status.ACTIVE

    with CaptureQueriesContext(connection) as queries:
        services.call_end(call_id=call.id, user_id=caller.id)
    assert statements(queries)[("UPDATE", "calls_callparticipant")] == 1  # both leave alike: one UPDATE
    left = CallParticipant.objects.filter(call=call).values_list("state", "left_at", "leave_reason")
    assert len(left) == 2 and len(set(left)) == 1 and left[0][0] == "left" and left[0][2] == "hangup"


def test_participants_changed_differently_are_updated_apart_and_alike_together():
    caller, joined, ringing = make_user(), make_user(), make_user()
    conversation = make_conversation(members=[caller, joined, ringing], type="group")
    call = services.call_initiate(
        caller_id=caller.id, conversation_id=conversation.id, callee_ids=[joined.id, ringing.id], call_type="audio"
    ).record.call
    services.call_join(call_id=call.id, user_id=joined.id)
    with CaptureQueriesContext(connection) as queries:
        services.call_end(call_id=call.id, user_id=caller.id)
    # caller and the callee who answered leave alike (one UPDATE); the one still ringing missed it
    assert sorted(map(sorted, updated_columns(queries, "calls_callparticipant"))) == [
        ["leave_reason", "left_at", "state"],
        ["left_at", "state"],
    ]
    states = dict(CallParticipant.objects.filter(call=call).values_list("user_id", "state"))
    assert states == {caller.id: "left", joined.id: "left", ringing.id: "missed"}


def updated_columns(queries, table: str) -> list[set[str]]:
    """The columns each UPDATE of ``table`` sets, from its SQL."""
    found = []
    for sql in (sql for trip in sent(queries) for sql in trip):
        update = re.match(r'UPDATE "(\w+)" SET (.*?) WHERE ', sql)
        if update and update.group(1) == table:
            found.append({part.split(" = ")[0].strip().strip('"') for part in update.group(2).split(", ")})
    return found


def test_a_write_updates_only_the_columns_it_changed_with_the_rows_updated_at():
    caller, callee, call = ringing_video_call()
    with CaptureQueriesContext(connection) as queries:
        services.call_join(call_id=call.id, user_id=callee.id)
    assert updated_columns(queries, "calls_call") == [{"status", "answered_at", "updated_at"}]
    assert updated_columns(queries, "calls_callparticipant") == [{"state", "joined_at"}]
    stored = Call.objects.get(pk=call.pk)
    assert stored.status == Call.Status.ACTIVE and stored.answered_at is not None
    assert stored.updated_at > call.updated_at and stored.call_type == "video"

    with CaptureQueriesContext(connection) as queries:
        services.call_end(call_id=call.id, user_id=caller.id)
    assert updated_columns(queries, "calls_call") == [{"status", "ended_at", "end_reason", "updated_at"}]
    assert Call.objects.get(pk=call.pk).status == Call.Status.ENDED


def test_the_timeline_read_with_the_locked_call_is_the_timeline_as_stored():
    """It comes as JSON (``sources._timeline_as_json``): every column, its type and its
    microseconds as the ORM reads them, an event with no actor too."""
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from calls.models import CallTimelineEvent
    from calls.persistence.sources import DatabaseSource

    def columns(event) -> dict:
        return {f.attname: getattr(event, f.attname) for f in event._meta.concrete_fields}

    _, _, call = ringing_video_call()
    services.call_expire(call_id=call.id, now=timezone.now() + timedelta(hours=1))  # missed: no actor
    stored = list(CallTimelineEvent.objects.filter(call=call).order_by("seq"))
    assert [e.kind for e in stored] == ["initiated", "rang", "missed", "ended"] and stored[-1].actor_id is None
    with transaction.atomic():
        record = DatabaseSource().load_call(call.id)
    assert [columns(e) for e in record.timeline] == [columns(e) for e in stored]
    assert all(not e._state.adding for e in record.timeline)
    assert all(
        e.at.microsecond == s.at.microsecond and e.at.tzinfo is not None
        for e, s in zip(record.timeline, stored, strict=True)
    )
