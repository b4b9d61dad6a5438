"""Limited mode with a real outage: the database behind a proxy the test takes down."""

import threading
import time
import uuid

import pytest
from django.db import connections

from calls import selectors, services
from calls.background_threads import make_supervisor
from calls.exceptions import CallAlreadyLive, PersistenceUnavailable
from calls.models import Call, CallParticipant
from calls.persistence import availability, replay
from calls.persistence.spool import SpoolFull, get_spool
from tests.calls.persistence.outage import initiate, recover


def test_write_during_an_outage_is_deferred_not_failed(pair, db_proxy):
    caller, callee, conversation = pair
    db_proxy.down()
    result = initiate(caller, callee, conversation)
    assert result.deferred
    assert availability.current() == availability.LIMITED
    assert get_spool().depth() == 1


def test_calls_made_in_an_outage_reach_the_database_exactly_once(pair, db_proxy):
    caller, callee, conversation = pair
    db_proxy.down()
    call_id = initiate(caller, callee, conversation).record.call.id
    joined = services.call_join(call_id=call_id, user_id=callee.id)
    ended = services.call_end(call_id=call_id, user_id=caller.id)
    assert joined.deferred and ended.deferred
    db_proxy.up()
    recover()
    assert availability.current() == availability.OPERATIONAL
    assert get_spool().depth() == 0
    call = Call.objects.get(pk=call_id)
    assert (call.status, call.end_reason) == ("ended", "hangup")
    assert call.started_at == ended.record.call.started_at
    assert call.answered_at == joined.record.call.answered_at
    assert call.ended_at == ended.record.call.ended_at
    assert CallParticipant.objects.filter(call_id=call_id).count() == 2
    assert dict(CallParticipant.objects.filter(call_id=call_id).values_list("user_id", "state")) == {
        caller.id: "left",
        callee.id: "left",
    }


def test_replaying_an_entry_twice_changes_nothing(pair, db_proxy):
    """A process that dies after the database committed an entry, before deleting it, replays it
    again on restart: the result must be the same."""
    caller, callee, conversation = pair
    db_proxy.down()
    call_id = initiate(caller, callee, conversation).record.call.id
    services.call_join(call_id=call_id, user_id=callee.id)
    db_proxy.up()
    payload = get_spool().latest(call_id)
    replay.replay_entry(payload)  # committed, but "crashed" before the spool entry was deleted
    recover()
    replay.replay_entry(payload)
    assert Call.objects.filter(pk=call_id).count() == 1
    assert CallParticipant.objects.filter(call_id=call_id).count() == 2
    assert Call.objects.get(pk=call_id).status == "active"


def test_replay_never_overwrites_a_newer_database_state(pair, db_proxy):
    caller, callee, conversation = pair
    call_id = initiate(caller, callee, conversation).record.call.id
    db_proxy.down()
    services.call_join(call_id=call_id, user_id=callee.id)  # journaled: active
    stale = get_spool().latest(call_id)
    db_proxy.up()
    recover()
    services.call_end(call_id=call_id, user_id=caller.id)  # database: ended, newer
    replay.replay_entry(stale)
    assert Call.objects.get(pk=call_id).status == "ended"


def test_replay_matches_participants_on_call_and_user_whatever_their_ids(pair, db_proxy):
    """Rows written before participant ids were derived from (call, user) keep their random ids;
    a journaled state of the call, whose ids differ, updates those rows instead of colliding."""
    caller, callee, conversation = pair
    call_id = initiate(caller, callee, conversation).record.call.id
    old_ids = {}
    for participant in CallParticipant.objects.filter(call_id=call_id):
        old_ids[participant.user_id] = uuid.uuid4()
        CallParticipant.objects.filter(pk=participant.pk).update(id=old_ids[participant.user_id])
    db_proxy.down()
    services.call_join(call_id=call_id, user_id=callee.id)  # journaled from the snapshot (derived ids)
    db_proxy.up()
    recover()
    rows = {p.user_id: (p.id, p.state) for p in CallParticipant.objects.filter(call_id=call_id)}
    assert rows == {caller.id: (old_ids[caller.id], "joined"), callee.id: (old_ids[callee.id], "joined")}
    assert get_spool().quarantined_count() == 0


def test_a_call_begun_before_the_outage_can_still_be_acted_on(pair, db_proxy):
    caller, callee, conversation = pair
    call_id = initiate(caller, callee, conversation).record.call.id
    db_proxy.down()
    result = services.call_join(call_id=call_id, user_id=callee.id)
    assert result.deferred and result.record.call.status == "active"
    record, deferred = selectors.call_get_for_user(call_id=call_id, user_id=caller.id)
    assert deferred and record.call.status == "active"


def test_reading_a_call_that_exists_only_in_the_spool(pair, db_proxy):
    caller, callee, conversation = pair
    db_proxy.down()
    call_id = initiate(caller, callee, conversation).record.call.id
    record, deferred = selectors.call_get_for_user(call_id=call_id, user_id=callee.id)
    assert deferred and str(record.call.id) == str(call_id)


def test_history_and_analytics_answer_unavailable_while_limited(pair, db_proxy):
    caller, callee, conversation = pair
    db_proxy.down()
    initiate(caller, callee, conversation)
    with pytest.raises(PersistenceUnavailable):
        selectors.call_history(user_id=caller.id)
    with pytest.raises(PersistenceUnavailable):
        selectors.call_analytics(user_id=caller.id)


def test_an_unknown_call_while_limited_is_unavailable_not_missing(pair, db_proxy):
    caller, *_ = pair
    db_proxy.down()
    availability.transition(availability.LIMITED)
    with pytest.raises(PersistenceUnavailable):
        selectors.call_get_for_user(call_id=uuid.uuid4(), user_id=caller.id)


def test_a_full_spool_refuses_new_writes_and_keeps_what_it_has(pair, db_proxy, settings):
    caller, callee, conversation = pair
    settings.SPOOL_MAX_BYTES = 3000
    db_proxy.down()
    call_id = initiate(caller, callee, conversation).record.call.id
    with pytest.raises(SpoolFull):
        for _ in range(20):
            services.call_set_media(call_id=call_id, user_id=caller.id, is_muted=True)
            services.call_set_media(call_id=call_id, user_id=caller.id, is_muted=False)
    kept = get_spool().depth()
    assert kept >= 1
    db_proxy.up()
    recover()
    assert Call.objects.filter(pk=call_id).exists()


def test_spool_survives_a_new_process_object(pair, db_proxy):
    """What a restart sees: a fresh Spool object on the same file holds every entry."""
    from calls.persistence.spool import Spool

    caller, callee, conversation = pair
    db_proxy.down()
    call_id = initiate(caller, callee, conversation).record.call.id
    reopened = Spool(get_spool().path, max_bytes=10**6, max_age=3600)
    assert reopened.depth() == 1 and reopened.latest(call_id)["call"]["status"] == "ringing"


def test_supervisor_recovers_by_itself(pair, db_proxy, settings):
    settings.DB_CONNECT_MAX_TRIES = 2
    settings.DB_CONNECT_BASE_DELAY = 0.05
    settings.DB_CONNECT_MAX_DELAY = 0.1
    settings.DB_PROBE_MAX_DELAY = 0.2
    caller, callee, conversation = pair
    db_proxy.down()
    call_id = initiate(caller, callee, conversation).record.call.id
    supervisor = make_supervisor()
    availability.reset_for_tests(availability.STARTING)
    supervisor.start()
    try:
        assert availability.wait_for(lambda s: s == availability.LIMITED, timeout=10)
        db_proxy.up()
        assert availability.wait_for(lambda s: s == availability.OPERATIONAL, timeout=15)
    finally:
        supervisor.stop()
    assert get_spool().depth() == 0
    assert Call.objects.filter(pk=call_id).count() == 1


def test_concurrent_writes_during_the_outage_are_all_journaled(pair, db_proxy):
    caller, callee, conversation = pair
    db_proxy.down()
    call_id = initiate(caller, callee, conversation).record.call.id
    errors = []

    def toggle(muted):
        try:
            services.call_set_media(call_id=call_id, user_id=caller.id, is_muted=muted)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=toggle, args=(i % 2 == 0,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []
    db_proxy.up()
    recover()
    assert Call.objects.filter(pk=call_id).count() == 1


def test_recovery_converges_while_clients_keep_writing(pair, db_proxy):
    """Replay catches up without locking writers out, then finishes atomically: the breaker
    closes even though writes never stop, and nothing written meanwhile is lost."""
    caller, callee, conversation = pair
    db_proxy.down()
    call_id = initiate(caller, callee, conversation).record.call.id
    for i in range(150):
        services.call_set_media(call_id=call_id, user_id=caller.id, is_muted=i % 2 == 0)
    db_proxy.up()
    stop = threading.Event()
    written = []

    def keep_writing():
        muted = False
        try:
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline:
                muted = not muted
                result = services.call_set_media(call_id=call_id, user_id=callee.id, is_muted=muted)
                written.append((muted, result.deferred))
        except Exception as exc:  # reported by the assertion below
            written.append((exc, None))
        finally:
            connections.close_all()

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        assert make_supervisor()._drain_and_close()
        assert availability.current() == availability.OPERATIONAL
        deadline = time.monotonic() + 30
        while not (written and not written[-1][1]) and writer.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)  # until a write lands in the database after the breaker closed
    finally:
        stop.set()
        writer.join(30)
    assert get_spool().depth() == 0
    assert written and written[-1][1] is False, f"the last write went to the database: {written[-1]}"
    last_muted = written[-1][0]
    assert CallParticipant.objects.get(call_id=call_id, user=callee).is_muted is last_muted
    assert Call.objects.filter(pk=call_id).count() == 1


def test_a_restarted_process_does_not_write_past_its_journal(pair, db_proxy):
    """Starting up with calls still journaled: writes and reads use the journal until it is
    replayed, even though the database already answers."""
    caller, callee, conversation = pair
    db_proxy.down()
    call_id = initiate(caller, callee, conversation).record.call.id
    db_proxy.up()
    availability.reset_for_tests(availability.STARTING)  # a new process, before its start-up check settles
    record, deferred = selectors.call_get_for_user(call_id=call_id, user_id=callee.id)
    assert deferred and record.call.status == "ringing"
    joined = services.call_join(call_id=call_id, user_id=callee.id)
    assert joined.deferred and joined.record.call.status == "active"
    with pytest.raises(CallAlreadyLive):
        initiate(callee, caller, conversation)  # the journaled call is live in this conversation
    assert not Call.objects.filter(pk=call_id).exists()
    recover()
    assert Call.objects.get(pk=call_id).status == "active"
