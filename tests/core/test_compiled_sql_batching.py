"""What ``core.compiled_sql`` sends in one round trip where the database takes several statements
at once (PostgreSQL here; CockroachDB alike): changes of one table apart, inserts one after
another, and a read sent after its lock. Not portable: SQLite sends each statement alone (the
portable tests in test_compiled_sql.py check that the results are the same there)."""

from __future__ import annotations

import uuid

import psycopg2.errors
import pytest
from django.db import connection, transaction
from django.db.models import Value
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from calls.models import Call, CallParticipant, CallTimelineEvent
from core import compiled_sql
from core.compiled_sql import CompiledRead, update_columns
from tests.core.test_compiled_sql import columns, ended, refused, round_trips, started_call, timeline_rows
from tests.factories import make_conversation, make_user
from tests.support.database import raw_connection

pytestmark = pytest.mark.django_db(transaction=True)


def test_this_database_takes_several_statements_at_once():
    assert compiled_sql.batches_statements()  # else every test here would pass for nothing


def test_two_changes_of_one_table_are_two_statements_and_inserts_only_follow_one_another():
    call_id, _ = started_call(callees=1)
    call, callee = ended(call_id)
    caller = CallParticipant.objects.get(call_id=call_id, role="caller")
    caller.is_muted = True
    with transaction.atomic(), CaptureQueriesContext(connection) as queries, compiled_sql.one_round_trip():
        update_columns(call, ["status", "ended_at", "updated_at"])
        update_columns(callee, ["state", "left_at"])
        update_columns(caller, ["is_muted"])  # the participants' table again: a statement of its own
        compiled_sql.insert_rows(timeline_rows(call_id, [10]))
    sent = round_trips(queries)
    assert len(sent) == 2 and all(sql.startswith("WITH s0 AS (UPDATE") for sql in sent)
    assert CallParticipant.objects.get(pk=caller.pk).is_muted is True
    assert CallParticipant.objects.get(pk=callee.pk).state == "left"

    # a new call, its participants and its events: INSERTs one after another, each seeing the last
    conversation = make_conversation(members=[make_user(), make_user()])
    new_call = Call(
        id=uuid.uuid4(), conversation=conversation, caller_id=conversation.created_by_id, started_at=timezone.now()
    )
    person = CallParticipant(
        id=uuid.uuid4(),
        call=new_call,
        user_id=conversation.created_by_id,
        role="caller",
        call_started_at=new_call.started_at,
    )
    with transaction.atomic(), CaptureQueriesContext(connection) as queries, compiled_sql.one_round_trip():
        compiled_sql.insert_rows([new_call])
        compiled_sql.insert_rows([person])
        compiled_sql.insert_rows(timeline_rows(new_call.id, [0, 1]))
    sent = round_trips(queries)
    assert len(sent) == 1 and sent[0].count("INSERT INTO") == 3 and "; INSERT INTO" in sent[0]
    assert CallParticipant.objects.filter(call_id=new_call.id).count() == 1
    assert CallTimelineEvent.objects.filter(call_id=new_call.id).count() == 2


def test_a_read_with_a_lock_locks_then_reads_in_one_round_trip_and_holds_the_lock():
    call_id, _ = started_call()

    def build(value):
        return (
            CallParticipant.objects.select_related("call")
            .filter(call_id=value)
            .annotate(doubled=Value(2) * 2)
            .order_by("role", "id")
        )

    read = CompiledRead(
        build,
        field=CallParticipant._meta.get_field("call"),
        lock=lambda value: Call.objects.select_for_update().filter(pk=value).order_by().values_list("pk"),
    )
    assert refused(lambda: read(call_id))  # a lock outside a transaction, as the ORM refuses it
    other = raw_connection(autocommit=False)
    try:
        with transaction.atomic(), CaptureQueriesContext(connection) as queries:
            found = read(call_id)
            with other.cursor() as cursor, pytest.raises(psycopg2.errors.LockNotAvailable):
                cursor.execute('SELECT id FROM "calls_call" WHERE id = %s FOR UPDATE NOWAIT', [str(call_id)])
        other.rollback()
    finally:
        other.close()
    assert len(queries) == 1 and "FOR UPDATE; SELECT" in queries.captured_queries[0]["sql"]
    assert [columns(p) for p in found] == [columns(p) for p in build(call_id)]
    assert [p.doubled for p in found] == [4, 4, 4]  # annotations, as the queryset sets them
    assert [columns(p.call) for p in found] == [columns(Call.objects.get(pk=call_id))] * 3
