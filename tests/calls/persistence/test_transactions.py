"""SQLSTATE 40001 retries and racing writes, for real, on PostgreSQL at SERIALIZABLE isolation
(which raises the same 40001 that CockroachDB does)."""

import threading

import pytest
from django.db import connection, connections

from calls import services
from calls.exceptions import CallError, InvalidTransition
from calls.models import Call, CallParticipant
from core import transactions
from core.transactions import TransactionConflict, run_in_transaction
from tests.factories import make_call, make_conversation, make_user
from tests.support.database import raw_connection

pytestmark = pytest.mark.django_db(transaction=True)


def retries_so_far() -> float:
    return transactions.transaction_retries._value.get()


def test_suite_runs_serializable():
    def isolation():
        with connection.cursor() as cursor:
            cursor.execute("SHOW transaction_isolation")
            return cursor.fetchone()[0]

    assert run_in_transaction(isolation) == "serializable"


def test_a_serialization_failure_reruns_the_whole_transaction():
    call = make_call(caller=make_user(), callees=[make_user()])
    other = raw_connection()
    attempts = []
    before = retries_so_far()

    def write():
        attempts.append(1)
        status = Call.objects.filter(pk=call.pk).values_list("status", flat=True).get()
        if len(attempts) == 1:
            with other.cursor() as cursor:  # a concurrent transaction changes the row and commits
                cursor.execute("UPDATE calls_call SET recording_url = 'x' WHERE id = %s", [str(call.pk)])
        Call.objects.filter(pk=call.pk).update(status="active" if status == "ringing" else status)
        return status

    try:
        assert run_in_transaction(write) == "ringing"
    finally:
        other.close()
    assert len(attempts) == 2
    assert retries_so_far() == before + 1
    assert Call.objects.get(pk=call.pk).recording_url == "x", "the concurrent write is kept"


def test_retries_are_bounded(settings):
    settings.TX_RETRY_MAX_ATTEMPTS = 3
    settings.TX_RETRY_BASE_DELAY = 0
    call = make_call(caller=make_user(), callees=[make_user()])
    other = raw_connection()
    attempts = []

    def always_conflicts():
        attempts.append(1)
        Call.objects.filter(pk=call.pk).values_list("status", flat=True).get()
        with other.cursor() as cursor:
            cursor.execute("UPDATE calls_call SET recording_url = %s WHERE id = %s", [str(len(attempts)), str(call.pk)])
        Call.objects.filter(pk=call.pk).update(status="active")

    try:
        with pytest.raises(TransactionConflict):
            run_in_transaction(always_conflicts)
    finally:
        other.close()
    assert len(attempts) == 3


def run_concurrently(*actions):
    """Start every action at the same instant on its own connection; their results or errors."""
    barrier = threading.Barrier(len(actions))
    results = [None] * len(actions)

    def run(index, action):
        try:
            barrier.wait(5)
            results[index] = action()
        except Exception as exc:
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


@pytest.fixture
def group_call():
    caller, alice, bob = make_user(), make_user(), make_user()
    conversation = make_conversation(members=[caller, alice, bob], type="group")
    result = services.call_initiate(
        caller_id=caller.id, conversation_id=conversation.id, callee_ids=[alice.id, bob.id], call_type="video"
    )
    return result.record.call.id, caller, alice, bob


@pytest.mark.parametrize("round_", range(3))
def test_two_callees_accepting_at_once_both_join_and_answered_at_is_set_once(group_call, round_):
    call_id, _, alice, bob = group_call
    results = run_concurrently(
        lambda: services.call_join(call_id=call_id, user_id=alice.id),
        lambda: services.call_join(call_id=call_id, user_id=bob.id),
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    call = Call.objects.get(pk=call_id)
    assert call.status == "active"
    assert call.answered_at == min(r.record.call.answered_at for r in results)
    states = dict(CallParticipant.objects.filter(call_id=call_id).values_list("user_id", "state"))
    assert states[alice.id] == states[bob.id] == "joined"


@pytest.mark.parametrize("round_", range(3))
def test_the_same_callee_accepting_on_two_devices_is_one_accept(group_call, round_):
    call_id, _, alice, _ = group_call
    results = run_concurrently(
        lambda: services.call_join(call_id=call_id, user_id=alice.id),
        lambda: services.call_join(call_id=call_id, user_id=alice.id),
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(r.outcome.changed for r in results) == [False, True]


@pytest.mark.parametrize("round_", range(3))
def test_accept_racing_end_has_one_consistent_outcome(group_call, round_):
    call_id, caller, alice, _ = group_call
    joined, ended = run_concurrently(
        lambda: services.call_join(call_id=call_id, user_id=alice.id),
        lambda: services.call_end(call_id=call_id, user_id=caller.id),
    )
    assert not isinstance(ended, Exception), ended
    call = Call.objects.get(pk=call_id)
    alice_state = CallParticipant.objects.get(call_id=call_id, user=alice).state
    if isinstance(joined, Exception):
        assert isinstance(joined, InvalidTransition), joined  # the end won: a 409, not a 500
        assert (call.status, call.answered_at, alice_state) == ("cancelled", None, "missed")
    else:
        assert (call.status, alice_state) == ("ended", "left")
        assert call.answered_at is not None
    assert not isinstance(joined, Exception) or isinstance(joined, CallError)
