"""A call write that waited for the call's row lock sees what the write before it committed, on
PostgreSQL's default READ COMMITTED too (CockroachDB and SERIALIZABLE PostgreSQL retry instead).
The locked read locks only the call's row, then reads the participants and the timeline (in the
same round trip, ``calls.persistence.sources``): this pins that what it returns after the wait is
what the other write left, so its answer, events and snapshot are not computed from a callee's old
state, and its timeline event takes the next position rather than the other write's."""

import threading
import time

import pytest
from django.db import connection, connections

from calls import services, timeline
from calls.models import CallParticipant, CallTimelineEvent
from tests.factories import make_conversation, make_user
from tests.support.database import raw_connection

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks and READ COMMITTED are PostgreSQL's")
def test_a_join_that_waited_for_the_lock_sees_the_answer_committed_before_it():
    caller, first, second = make_user(), make_user(), make_user()
    conversation = make_conversation(members=[caller, first, second])
    call = services.call_initiate(
        caller_id=caller.id, conversation_id=conversation.id, callee_ids=[first.id, second.id], call_type="video"
    ).record.call
    first_row = CallParticipant.objects.get(call=call, user=first)
    other = raw_connection(autocommit=False)
    watcher = raw_connection()  # pg_stat_activity is read afresh by each statement only outside a transaction
    try:
        with other.cursor() as cursor:  # another process answers for the first callee, holding the lock
            cursor.execute('SELECT id FROM "calls_call" WHERE id = %s FOR UPDATE', [str(call.id)])
            cursor.execute(
                "UPDATE \"calls_callparticipant\" SET state = 'joined', joined_at = now() WHERE id = %s",
                [str(first_row.id)],
            )
            cursor.execute(
                "UPDATE \"calls_call\" SET status = 'active', answered_at = now() WHERE id = %s", [str(call.id)]
            )
            cursor.execute(  # its answer on the timeline, after initiated and two rang
                'INSERT INTO "calls_calltimelineevent" (id, call_id, seq, at, kind, actor_id, detail)'
                " VALUES (%s, %s, 3, now(), 'accepted', %s, '')",
                [str(timeline.event_id(call.id, 3)), str(call.id), str(first.id)],
            )
        results = []

        def second_joins():
            try:
                results.append(services.call_join(call_id=call.id, user_id=second.id))
            finally:
                connections.close_all()

        thread = threading.Thread(target=second_joins)
        thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _waiting_for_a_lock(watcher):
            time.sleep(0.02)
        assert _waiting_for_a_lock(watcher), "the second join never waited for the call's lock"
        other.commit()
        thread.join(10)
    finally:
        other.close()
        watcher.close()
    assert len(results) == 1
    states = {str(p.user_id): p.state for p in results[0].record.participants}
    assert states == {str(caller.id): "joined", str(first.id): "joined", str(second.id): "joined"}
    assert results[0].record.call.status == "active"
    expected = [
        (0, "initiated", str(caller.id)),
        (1, "rang", str(first.id)),
        (2, "rang", str(second.id)),
        (3, "accepted", str(first.id)),
        (4, "accepted", str(second.id)),
    ]
    assert [(e.seq, e.kind, str(e.actor_id)) for e in results[0].record.timeline] == expected
    stored = CallTimelineEvent.objects.filter(call=call).order_by("seq").values_list("seq", "kind", "actor_id")
    assert [(seq, kind, str(actor)) for seq, kind, actor in stored] == expected


def _waiting_for_a_lock(watcher) -> bool:
    with watcher.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0
