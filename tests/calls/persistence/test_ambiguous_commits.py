"""Writes whose commit outcome the client never learns.

The proxy goes down at the COMMIT itself: either the COMMIT reaches PostgreSQL and its answer is
lost (the rows are there, the client sees a connection error), or it never arrives (nothing is
there). Either way the write is journaled, and the replay converges to one row set: the state
the client was told, each call once, each participant once.
"""

import threading
from contextlib import contextmanager

import pytest
from django.db import connection

from calls import services
from calls.background_threads import make_supervisor
from calls.exceptions import PersistenceUnavailable
from calls.models import Call, CallParticipant
from calls.persistence import availability
from calls.persistence.spool import get_spool
from core import transactions
from tests.calls.persistence.outage import initiate, recover, rows_behind_the_proxy

OUTCOMES = pytest.mark.parametrize("landed", [True, False], ids=["commit-landed-answer-lost", "commit-never-landed"])


@pytest.fixture
def fast_probes(settings):
    settings.DB_CONNECT_MAX_TRIES = 2
    settings.DB_CONNECT_BASE_DELAY = 0.05
    settings.DB_CONNECT_MAX_DELAY = 0.1
    settings.DB_PROBE_MAX_DELAY = 0.2


@OUTCOMES
def test_an_initiate_whose_commit_outcome_is_unknown_replays_and_the_service_recovers(
    pair, db_proxy, fast_probes, landed
):
    """The drill's stall: the initiate committed, the client saw a connection error, the call was
    journaled again; the replay must not collide with the rows already there."""
    caller, callee, conversation = pair
    cut = db_proxy.cut_at(b"COMMIT", deliver=landed)
    started = initiate(caller, callee, conversation)
    assert cut.is_set(), "the proxy went down at the COMMIT"
    assert started.deferred and availability.current() == availability.LIMITED
    call_id = started.record.call.id
    status, participants = rows_behind_the_proxy(db_proxy, call_id)
    if landed:
        assert status == "ringing" and len(participants) == 2
    else:
        assert status is None and participants == {}
    joined = services.call_join(call_id=call_id, user_id=callee.id)  # during the outage
    assert joined.deferred

    db_proxy.up()
    supervisor = make_supervisor()
    supervisor.start()
    try:
        assert availability.wait_for(lambda s: s == availability.OPERATIONAL, timeout=10), (
            availability.status().last_error
        )
    finally:
        supervisor.stop()
    assert get_spool().depth() == 0 and get_spool().quarantined_count() == 0
    assert Call.objects.filter(pk=call_id).count() == 1
    call = Call.objects.get(pk=call_id)
    assert (call.status, call.answered_at) == ("active", joined.record.call.answered_at)
    assert dict(CallParticipant.objects.filter(call_id=call_id).values_list("user_id", "state")) == {
        caller.id: "joined",
        callee.id: "joined",
    }


@OUTCOMES
def test_a_join_whose_commit_outcome_is_unknown_reaches_the_database(pair, db_proxy, landed):
    """The journaled join is computed from the state before the join (not from a snapshot of a
    commit that may never have happened), so it is journaled, and replayed, in both cases."""
    caller, callee, conversation = pair
    call_id = initiate(caller, callee, conversation).record.call.id
    cut = db_proxy.cut_at(b"COMMIT", deliver=landed)
    joined = services.call_join(call_id=call_id, user_id=callee.id)
    assert cut.is_set()
    assert joined.deferred and joined.record.call.status == "active"
    assert rows_behind_the_proxy(db_proxy, call_id)[0] == ("active" if landed else "ringing")
    assert get_spool().depth() == 1

    db_proxy.up()
    recover()
    call = Call.objects.get(pk=call_id)
    assert (call.status, call.answered_at) == ("active", joined.record.call.answered_at)
    assert CallParticipant.objects.get(call_id=call_id, user=callee).state == "joined"
    assert CallParticipant.objects.filter(call_id=call_id).count() == 2
    assert get_spool().quarantined_count() == 0


def test_an_initiate_retried_on_the_database_after_a_lost_answer_is_not_its_own_conflict(pair, db_proxy):
    """The breaker can close while the write whose answer was lost waits for the journal: it then
    runs on the database again, finds the call its first attempt committed, and answers with it
    (not 409 for its own call, not a duplicate key)."""
    caller, callee, conversation = pair
    spool = get_spool()
    results = []
    cut = db_proxy.cut_at(b"COMMIT", deliver=True)
    with spool._lock:  # the journal is busy (as during the supervisor's final drain)
        writer = threading.Thread(target=lambda: results.append(initiate_in_thread(caller, callee, conversation)))
        writer.start()
        assert cut.wait(10) and availability.wait_for(lambda s: s == availability.LIMITED, timeout=10)
        db_proxy.up()
        availability.transition(availability.OPERATIONAL)  # what the drain does before letting writers in
    writer.join(20)
    connection.close()  # this thread's connection went down with the proxy
    assert len(results) == 1
    result = results[0]
    assert not isinstance(result, Exception), result
    assert not result.deferred
    assert Call.objects.filter(pk=result.record.call.id).count() == 1
    assert CallParticipant.objects.filter(call_id=result.record.call.id).count() == 2
    assert spool.depth() == 0


def initiate_in_thread(caller, callee, conversation):
    try:
        return initiate(caller, callee, conversation)
    except Exception as exc:  # handed to the test thread's assertion
        return exc
    finally:
        connection.close()


@contextmanager
def ambiguous_commits_on(table: str):
    """While inside, every COMMIT that inserted into ``table`` fails as CockroachDB's "result is
    ambiguous" (SQLSTATE 40003), raised for real by PostgreSQL (a deferred constraint trigger)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION test_result_is_ambiguous() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'result is ambiguous (error=rpc error: node unavailable)' USING ERRCODE = '40003';
            END $$;
            """
        )
        cursor.execute(
            f"CREATE CONSTRAINT TRIGGER test_result_is_ambiguous AFTER INSERT ON {table}"
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_result_is_ambiguous()"
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER test_result_is_ambiguous ON {table}")
            cursor.execute("DROP FUNCTION test_result_is_ambiguous()")


def test_sqlstate_40003_at_commit_is_journaled_and_replayed(pair, db_proxy):
    """CockroachDB's "result is ambiguous" (SQLSTATE 40003), raised for real by PostgreSQL at
    COMMIT (a deferred trigger): the write is journaled, not failed and not retried in place."""
    caller, callee, conversation = pair
    retries_before = transactions.transaction_retries._value.get()
    with ambiguous_commits_on("calls_call"):
        started = initiate(caller, callee, conversation)
    assert started.deferred and availability.current() == availability.LIMITED
    assert "result is ambiguous" in availability.status().last_error
    assert transactions.transaction_retries._value.get() == retries_before, "not retried in place"
    call_id = started.record.call.id
    assert not Call.objects.filter(pk=call_id).exists()
    recover()
    assert availability.current() == availability.OPERATIONAL
    assert Call.objects.filter(pk=call_id).count() == 1
    assert CallParticipant.objects.filter(call_id=call_id).count() == 2


def test_sqlstate_40003_on_a_write_nothing_journals_answers_503_and_is_not_retried(pair, db_proxy):
    caller, callee, _conversation = pair
    retries_before = transactions.transaction_retries._value.get()
    with ambiguous_commits_on("calls_conversation"), pytest.raises(PersistenceUnavailable, match="could not confirm"):
        services.conversation_create(creator_id=caller.id, type="direct", member_ids=[callee.id])
    assert transactions.transaction_retries._value.get() == retries_before
    assert availability.current() == availability.OPERATIONAL  # the database answered: nothing to replay, no breaker
