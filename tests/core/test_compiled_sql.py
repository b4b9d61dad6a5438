"""Statements compiled once per connection (core/compiled_sql.py): reads give the same rows and
instances as the queryset they are built from and updates write what ``save(update_fields=...)``
writes, on PostgreSQL and SQLite alike, compiled once per thread, with the ORM's refusals kept."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.db import DatabaseError, IntegrityError, connection, connections, transaction
from django.db.models import Value
from django.db.models.functions import Upper
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from calls import services
from calls.models import Call, CallParticipant, CallTimelineEvent
from calls.persistence import sources
from core import compiled_sql
from core.compiled_sql import CompiledRead, update_columns, update_rows
from tests.factories import make_conversation, make_user

pytestmark = [pytest.mark.portable, pytest.mark.django_db(transaction=True)]


def started_call(callees: int = 2):
    caller, *others = [make_user() for _ in range(1 + callees)]
    conversation = make_conversation(members=[caller, *others])
    result = services.call_initiate(
        caller_id=caller.id, conversation_id=conversation.id, callee_ids=[o.id for o in others], call_type="video"
    )
    services.call_join(call_id=result.record.call.id, user_id=others[0].id)
    return result.record.call.id, conversation


def columns(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


def test_instances_with_their_select_related_objects_are_those_the_queryset_gives():
    call_id, _ = started_call()
    started_call()  # another call, not to be read

    def build(value):
        return CallParticipant.objects.select_related("call").filter(call_id=value).order_by("role", "id")

    read = CompiledRead(build, field=CallParticipant._meta.get_field("call"))
    compiled, expected = read(call_id), list(build(call_id))
    assert [columns(p) for p in compiled] == [columns(p) for p in expected]
    assert len(compiled) == 3
    assert all(isinstance(p.call_started_at, datetime) and p.call_started_at.tzinfo for p in compiled)  # converted
    assert all(isinstance(p.user_id, uuid.UUID) for p in compiled)
    # The related call came with the same query, as select_related gives it, not lazily.
    with CaptureQueriesContext(connection) as queries:
        assert [columns(p.call) for p in compiled] == [columns(p.call) for p in expected]
    assert len(queries) == 0
    assert all(not p._state.adding and p._state.db == "default" for p in compiled)  # saved as an update later


def test_values_of_a_union_are_those_the_queryset_gives_with_the_value_bound_in_both_parts():
    call_id, conversation = started_call()
    started_call()
    compiled = sources._conversation_state_read(conversation.id)
    assert sorted(compiled, key=str) == sorted(sources._conversation_state_query(conversation.id), key=str)
    live = [row for row in compiled if row[1] is not None]
    assert [row[0] for row in live] == [call_id]
    assert len(compiled) == 4  # three members, one live call
    assert sources._conversation_state_read(uuid.uuid4()) == []


def test_the_sql_is_compiled_once_per_thread_then_only_bound_again():
    first, _ = started_call()
    second, _ = started_call()
    built = []

    def build(value):
        built.append(value)
        return CallTimelineEvent.objects.filter(call_id=value).order_by("seq")

    read = CompiledRead(build, field=CallTimelineEvent._meta.get_field("call"))
    with CaptureQueriesContext(connection) as queries:
        timelines = [read(first), read(second), read(first)]
    assert len(built) == 2  # the two markers of the one compilation, not a build per read
    assert len(queries) == 3  # one statement a read

    def masked(sql: str) -> str:
        for call_id in (first, second):
            sql = sql.replace(str(call_id), "?").replace(call_id.hex, "?")
        return sql

    assert len({masked(q["sql"]) for q in queries.captured_queries}) == 1
    assert [[e.seq for e in t] for t in timelines] == [[0, 1, 2, 3]] * 3
    assert {e.call_id for e in timelines[1]} == {second}
    assert [e.kind for e in timelines[0]] == list(
        CallTimelineEvent.objects.filter(call_id=first).order_by("seq").values_list("kind", flat=True)
    )

    other_thread = []

    def in_another_thread():
        try:
            other_thread.append(len(read(second)))
        finally:
            connections.close_all()

    thread = threading.Thread(target=in_another_thread)
    thread.start()
    thread.join(10)
    assert other_thread == [4]
    assert len(built) == 4  # that thread compiled its own, for its own connection


def test_a_query_that_ignores_its_value_is_refused():
    read = CompiledRead(lambda value: Call.objects.all(), field=Call._meta.get_field("id"))
    with pytest.raises(ValueError, match="does not use the value"):
        read(uuid.uuid4())


def refused(read) -> bool:
    try:
        read()
    except TransactionManagementError:
        return True
    return False


def test_a_locking_read_outside_a_transaction_is_refused_where_the_orm_refuses_it():
    call_id, _ = started_call()

    def build(value):
        return Call.objects.select_for_update().filter(pk=value)

    read = CompiledRead(build, field=Call._meta.get_field("id"))
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        assert [c.pk for c in read(call_id)] == [call_id]
    assert ("FOR UPDATE" in queries.captured_queries[-1]["sql"]) == connection.features.has_select_for_update
    orm_refuses = refused(lambda: list(build(call_id)))
    assert refused(lambda: read(call_id)) == orm_refuses
    # PostgreSQL (and CockroachDB) lock, so outside a transaction it is refused; SQLite has no
    # FOR UPDATE, and the ORM ignores it there.
    assert orm_refuses == connection.features.has_select_for_update


# --- updates -------------------------------------------------------------------------------------


def test_an_update_writes_the_named_columns_stamps_auto_now_and_leaves_the_rest():
    call_id, _ = started_call()
    call = Call.objects.get(pk=call_id)
    before = columns(call)
    call.status, call.end_reason, call.ended_at = Call.Status.ENDED, "hangup", timezone.now()
    call.call_type = "audio"  # changed here but not named: not written
    with CaptureQueriesContext(connection) as queries:
        update_columns(call, ["status", "end_reason", "ended_at", "updated_at"])
    assert len(queries) == 1 and queries.captured_queries[0]["sql"].startswith('UPDATE "calls_call" SET ')
    stored = Call.objects.get(pk=call_id)
    assert (stored.status, stored.end_reason, stored.ended_at) == (Call.Status.ENDED, "hangup", call.ended_at)
    assert stored.call_type == before["call_type"] == "video"
    assert stored.updated_at > before["updated_at"] and stored.updated_at == call.updated_at  # pre_save ran
    assert stored.started_at == before["started_at"]


def test_an_update_compiles_once_per_shape_and_a_null_is_a_shape_of_its_own():
    call_id, _ = started_call()
    participant = CallParticipant.objects.filter(call_id=call_id, state="ringing").get()
    compiled_sql._per_thread.__dict__.clear()
    participant.state, participant.left_at = "missed", timezone.now()
    update_columns(participant, ["state", "left_at"])
    participant.state, participant.left_at = "ringing", None  # NULL: written into the SQL itself
    update_columns(participant, ["state", "left_at"])
    participant.state, participant.left_at = "declined", timezone.now()
    update_columns(participant, ["state", "left_at"])
    shapes = compiled_sql._per_thread.default[1]
    assert len(shapes) == 2 and all(compiled.usable for compiled in shapes.values())  # none left to the ORM
    stored = CallParticipant.objects.get(pk=participant.pk)
    assert (stored.state, stored.left_at) == ("declined", participant.left_at)


def test_an_update_of_a_row_that_is_gone_raises_as_the_orm_does():
    call_id, _ = started_call()
    call = Call.objects.get(pk=call_id)
    Call.objects.filter(pk=call_id).delete()
    with pytest.raises(DatabaseError, match="did not affect any rows"):
        update_columns(call, ["status", "updated_at"])
    with pytest.raises(DatabaseError, match="did not affect any rows"):
        call.save(update_fields=["status", "updated_at"])


def test_rows_changed_alike_are_one_update_and_rows_changed_apart_one_each():
    call_id, _ = started_call(callees=1)
    rows = list(CallParticipant.objects.filter(call_id=call_id).order_by("role"))
    assert len(rows) == 2
    now = timezone.now()
    for row in rows:
        row.state, row.left_at = "left", now
    with CaptureQueriesContext(connection) as queries:
        update_rows(rows, ["state", "left_at"])
    assert len(queries) == 1 and " IN (" in queries.captured_queries[0]["sql"]
    assert set(CallParticipant.objects.filter(call_id=call_id).values_list("state", "left_at")) == {("left", now)}

    rows[1].left_at = now + timedelta(seconds=1)  # no longer alike: one UPDATE each
    with CaptureQueriesContext(connection) as queries:
        update_rows(rows, ["state", "left_at"])
    assert len(queries) == 2
    assert CallParticipant.objects.get(pk=rows[1].pk).left_at == rows[1].left_at

    CallParticipant.objects.filter(pk=rows[1].pk).delete()
    rows[1].left_at = now
    with pytest.raises(DatabaseError, match="did not affect any rows"):  # one of the rows is gone
        update_rows(rows, ["state", "left_at"])


def timeline_rows(call_id, seqs, **overrides) -> list[CallTimelineEvent]:
    at = timezone.now()
    return [
        CallTimelineEvent(
            **{"id": uuid.uuid4(), "call_id": call_id, "seq": seq, "at": at, "kind": "left", "detail": "hangup"}
            | overrides
        )
        for seq in seqs
    ]


def test_an_insert_writes_what_bulk_create_writes_and_marks_the_rows_saved():
    call_id, _ = started_call(callees=1)
    at = timezone.now()
    compiled_rows = timeline_rows(call_id, [10, 11], at=at)
    orm_rows = timeline_rows(call_id, [20, 21], at=at)
    with CaptureQueriesContext(connection) as queries:
        compiled_sql.insert_rows(compiled_rows)
    assert len(queries) == 1 and queries.captured_queries[0]["sql"].startswith('INSERT INTO "calls_calltimelineevent"')
    CallTimelineEvent.objects.bulk_create(orm_rows)
    assert all(not row._state.adding and row._state.db == "default" for row in compiled_rows)

    def stored(row) -> dict:
        found = columns(CallTimelineEvent.objects.get(pk=row.pk))
        return {name: value for name, value in found.items() if name not in ("id", "seq")}

    assert [stored(row) for row in compiled_rows] == [stored(row) for row in orm_rows]
    assert [columns(CallTimelineEvent.objects.get(pk=row.pk)) for row in compiled_rows] == [
        columns(row) for row in compiled_rows
    ]

    # auto_now_add and auto_now are stamped at the insert, as the ORM stamps them
    conversation = make_conversation(members=[make_user(), make_user()])
    long_ago = timezone.now() - timedelta(days=3)
    call = Call(
        id=uuid.uuid4(), conversation=conversation, caller_id=conversation.created_by_id, created_at=long_ago,
        updated_at=long_ago, started_at=long_ago,
    )  # fmt: skip
    compiled_sql.insert_rows([call])
    stored_call = Call.objects.get(pk=call.pk)
    assert stored_call.created_at > long_ago and stored_call.updated_at == call.updated_at > long_ago
    assert stored_call.started_at == long_ago and stored_call.status == Call.Status.RINGING


def test_an_insert_compiles_once_per_model_and_number_of_rows():
    call_id, _ = started_call(callees=1)
    compiled_sql._per_thread.__dict__.clear()
    for seqs in ([10], [11], [12, 13], [14]):
        compiled_sql.insert_rows(timeline_rows(call_id, seqs))
    shapes = compiled_sql._per_thread.default[1]
    assert len(shapes) == 2 and all(compiled.usable for compiled in shapes.values())
    assert list(CallTimelineEvent.objects.filter(call_id=call_id, seq__gte=10).values_list("seq", flat=True)) == [
        10,
        11,
        12,
        13,
        14,
    ]


def test_a_duplicate_insert_raises_the_databases_integrity_error_and_writes_nothing():
    call_id, _ = started_call(callees=1)
    rows = timeline_rows(call_id, [2])  # seq 2 (accepted) exists: (call, seq) is unique
    with pytest.raises(IntegrityError), transaction.atomic():
        compiled_sql.insert_rows(timeline_rows(call_id, [30]) + rows)
    assert not CallTimelineEvent.objects.filter(call_id=call_id, seq=30).exists()
    assert rows[0]._state.adding


def test_expressions_and_rows_without_a_key_are_left_to_bulk_create():
    call_id, _ = started_call(callees=1)
    compiled_sql._per_thread.__dict__.clear()
    compiled_sql.insert_rows(timeline_rows(call_id, [40], detail=Upper(Value("cancel"))))
    entry = LogEntry(user=make_user(), object_id="x", object_repr="x", action_flag=ADDITION)  # an AutoField key
    compiled_sql.insert_rows([entry])
    assert getattr(compiled_sql._per_thread, "default", (None, {}))[1] == {}  # nothing compiled
    assert CallTimelineEvent.objects.get(call_id=call_id, seq=40).detail == "CANCEL"
    assert entry.pk is not None and LogEntry.objects.get(pk=entry.pk).object_repr == "x"


# --- one round trip ------------------------------------------------------------------------------


def round_trips(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries]


def ended(call_id) -> tuple[Call, CallParticipant]:
    """The (active) call and its callee, ended in memory (not saved)."""
    call = Call.objects.get(pk=call_id)
    callee = CallParticipant.objects.get(call_id=call_id, role="callee")
    now = timezone.now()
    call.status, call.ended_at = Call.Status.ENDED, now
    callee.state, callee.left_at = "left", now
    return call, callee


def test_writes_in_one_round_trip_wait_for_the_end_then_go_together_as_written_alone():
    call_id, _ = started_call(callees=1)
    call, callee = ended(call_id)
    events = timeline_rows(call_id, [10, 11])
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        with compiled_sql.one_round_trip():
            update_columns(call, ["status", "ended_at", "updated_at"])
            update_columns(callee, ["state", "left_at"])
            compiled_sql.insert_rows(events)
            waiting = len(queries)
        sent = round_trips(queries)
    stored = Call.objects.get(pk=call_id)
    assert (stored.status, stored.ended_at) == (Call.Status.ENDED, call.ended_at)
    assert CallParticipant.objects.get(pk=callee.pk).state == "left"
    assert list(CallTimelineEvent.objects.filter(call_id=call_id, seq__gte=10).values_list("seq", flat=True)) == [
        10,
        11,
    ]
    assert all(not event._state.adding for event in events)
    if compiled_sql.batches_statements():  # PostgreSQL, CockroachDB: nothing until the end, then one
        assert waiting == 0
        assert len(sent) == 1 and sent[0].startswith("WITH s0 AS (UPDATE") and sent[0].count("RETURNING 1") == 3
    else:  # each at once
        assert waiting == 3 and len(sent) == 3


def test_a_row_gone_or_a_duplicate_key_in_one_round_trip_raises_as_alone_and_the_transaction_undoes_the_rest():
    call_id, _ = started_call(callees=1)
    call, callee = ended(call_id)
    CallParticipant.objects.filter(pk=callee.pk).delete()
    gone = pytest.raises(DatabaseError, match="did not affect any rows")
    with gone, transaction.atomic(), compiled_sql.one_round_trip():
        update_columns(call, ["status", "ended_at", "updated_at"])
        update_columns(callee, ["state", "left_at"])  # gone
    assert Call.objects.get(pk=call_id).status == Call.Status.ACTIVE  # the call's update was undone

    with pytest.raises(IntegrityError), transaction.atomic(), compiled_sql.one_round_trip():
        update_columns(call, ["status", "ended_at", "updated_at"])
        compiled_sql.insert_rows(timeline_rows(call_id, [0]))  # seq 0 (initiated) exists
    assert Call.objects.get(pk=call_id).status == Call.Status.ACTIVE
    assert CallTimelineEvent.objects.filter(call_id=call_id).count() == 3  # initiated, rang, accepted


def test_a_block_left_by_an_exception_sends_nothing():
    call_id, _ = started_call(callees=1)
    call, _callee = ended(call_id)
    refused_by_a_rule = pytest.raises(RuntimeError)
    with (
        CaptureQueriesContext(connection) as queries,
        refused_by_a_rule,
        transaction.atomic(),
        compiled_sql.one_round_trip(),
    ):
        update_columns(call, ["status", "ended_at", "updated_at"])
        raise RuntimeError("the write's rule refused")
    sent = [q for q in round_trips(queries) if q.startswith(("UPDATE", "WITH"))]
    assert len(sent) == (0 if compiled_sql.batches_statements() else 1)  # SQLite: sent at once, then rolled back
    assert Call.objects.get(pk=call_id).status == Call.Status.ACTIVE


def test_a_statement_the_orm_sends_itself_goes_after_what_waits():
    call_id, _ = started_call(callees=1)
    call, _callee = ended(call_id)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries, compiled_sql.one_round_trip():
        update_columns(call, ["status", "ended_at", "updated_at"])
        compiled_sql.insert_rows(timeline_rows(call_id, [10], detail=Upper(Value("x"))))  # bulk_create's
    sent = [sql for sql in round_trips(queries) if sql.startswith(("UPDATE", "INSERT", "WITH"))]
    assert [sql.split()[0] for sql in sent] == ["UPDATE", "INSERT"]
    assert CallTimelineEvent.objects.get(call_id=call_id, seq=10).detail == "X"
