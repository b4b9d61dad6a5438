"""The replay's fast path: many journaled calls in one transaction (``replay.replay_entries``),
with the same rules as one at a time, and a fall-back that quarantines only the entry at fault."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from calls import services
from calls.models import Call, CallParticipant
from calls.persistence import replay
from calls.persistence.spool import UnappliableEntry, get_spool
from tests.calls.persistence.outage import initiate, recover
from tests.factories import make_conversation, make_user


@pytest.fixture
def pairs(db_proxy, spool_path):
    """Five conversations the server has seen, each with a caller and a callee."""

    made = []
    for _ in range(5):
        caller, callee = make_user(), make_user()
        conversation = make_conversation(members=[caller, callee])
        services.conversation_open(conversation_id=conversation.id, user_id=caller.id)
        made.append((caller, callee, conversation))
    return made


def journaled_calls(pairs, db_proxy) -> list[dict]:
    """One call per pair, initiated and joined while the database is away: the newest journaled
    state of each (the database is back when this returns)."""
    db_proxy.down()
    call_ids = []
    for caller, callee, conversation in pairs:
        call_id = initiate(caller, callee, conversation).record.call.id
        services.call_join(call_id=call_id, user_id=callee.id)
        call_ids.append(call_id)
    db_proxy.up()
    return [get_spool().latest(call_id) for call_id in call_ids]


def test_a_batch_writes_every_call_with_its_journaled_times(pairs, db_proxy):
    payloads = journaled_calls(pairs, db_proxy)
    replay.replay_entries(payloads)
    for payload in payloads:
        call = Call.objects.get(pk=payload["call"]["id"])
        assert call.status == "active"
        # auto_now fields keep the write's own time, not the replay's: the newer-state rule needs it.
        assert call.updated_at.isoformat() == payload["call"]["updated_at"]
        assert call.created_at.isoformat() == payload["call"]["created_at"]
        assert dict(CallParticipant.objects.filter(call=call).values_list("user_id", "state")) == {
            uuid.UUID(p["user_id"]): p["state"] for p in payload["participants"]
        }


def test_a_batch_takes_the_same_number_of_queries_whatever_its_size(pairs, db_proxy):
    payloads = journaled_calls(pairs, db_proxy)
    with CaptureQueriesContext(connection) as one:
        replay.replay_entries(payloads[:1])
    with CaptureQueriesContext(connection) as four:
        replay.replay_entries(payloads[1:])
    assert len(four) == len(one)
    assert all(CallParticipant.objects.filter(call_id=p["call"]["id"]).count() == 2 for p in payloads)


def test_a_batch_applied_twice_changes_nothing(pairs, db_proxy):
    payloads = journaled_calls(pairs, db_proxy)
    replay.replay_entries(payloads)
    replay.replay_entries(payloads)
    ids = [p["call"]["id"] for p in payloads]
    assert Call.objects.filter(pk__in=ids).count() == len(payloads)
    assert CallParticipant.objects.filter(call_id__in=ids).count() == 2 * len(payloads)


def test_a_batch_leaves_a_newer_database_state_alone_and_applies_the_rest(pairs, db_proxy):
    payloads = journaled_calls(pairs, db_proxy)
    recover()  # everything journaled is in the database now
    first = payloads[0]["call"]["id"]
    services.call_end(call_id=first, user_id=pairs[0][0].id)  # newer than its journaled "active"
    Call.objects.filter(pk__in=[p["call"]["id"] for p in payloads[1:]]).delete()
    replay.replay_entries(payloads)
    assert Call.objects.get(pk=first).status == "ended"
    assert Call.objects.filter(pk__in=[p["call"]["id"] for p in payloads[1:]], status="active").count() == 4


def test_a_batch_matches_participants_on_call_and_user_whatever_their_ids(pairs, db_proxy):
    payloads = journaled_calls(pairs, db_proxy)
    replay.replay_entries(payloads[:1])
    call_id = payloads[0]["call"]["id"]
    for participant in CallParticipant.objects.filter(call_id=call_id):
        CallParticipant.objects.filter(pk=participant.pk).update(id=uuid.uuid4())
    replay.replay_entries(payloads)
    assert CallParticipant.objects.filter(call_id=call_id).count() == 2


def test_a_batch_with_a_poison_entry_writes_nothing_and_says_so(pairs, db_proxy):
    payloads = journaled_calls(pairs, db_proxy)
    poison = {**payloads[2], "call": {**payloads[2]["call"], "status": "x" * 50}}
    with pytest.raises(UnappliableEntry, match=r"^DataError: value too long"):
        replay.replay_entries([*payloads[:2], poison, *payloads[3:]])
    assert not Call.objects.filter(pk__in=[p["call"]["id"] for p in payloads]).exists()


def test_the_spool_falls_back_to_one_by_one_and_quarantines_only_the_entry_at_fault(pairs, db_proxy):
    """A journaled call whose callee has no account row, among four good ones: the batch cannot
    apply, so the chunk is applied entry by entry; the four reach the database, one is quarantined."""
    ghost = uuid.uuid4()
    payloads = journaled_calls(pairs, db_proxy)
    bad = payloads[1]["call"]["id"]
    spool = get_spool()
    with spool.write_transaction() as tx:  # a newer state of one call, naming a user that does not exist
        payload = tx.latest(bad)
        payload["participants"][1]["user_id"] = str(ghost)
        tx.append(
            call_id=bad,
            conversation_id=payload["call"]["conversation_id"],
            status="active",
            operation="x",
            payload=payload,
        )
    applied = spool.replay(replay.replay_entry, apply_many=replay.replay_entries)
    # The call's three entries (initiate, join, the bad one) go to the quarantine together.
    assert [e["call_id"] for e in spool.quarantined()] == [bad] * 3
    assert applied == spool_entries_for(payloads, exclude=bad)
    assert spool.depth() == 0
    assert Call.objects.filter(pk__in=[p["call"]["id"] for p in payloads]).count() == 4
    assert not Call.objects.filter(pk=bad).exists()


def spool_entries_for(payloads, *, exclude) -> int:
    """Each good call was journaled twice (initiate, join)."""
    return 2 * sum(1 for p in payloads if p["call"]["id"] != exclude)
