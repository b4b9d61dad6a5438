"""No poison entry stops the replay: an entry that cannot be applied for a reason that is not an
outage moves to the spool's quarantine with its reason and time, the replay goes on, and only an
operator takes it out again (retry after a fix, or discard)."""

import json
import logging
import uuid

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django.test import Client

from calls import services
from calls.background_threads import make_supervisor
from calls.models import Call, CallParticipant
from calls.persistence import availability, replay, snapshot_cache
from calls.persistence.spool import Spool, UnappliableEntry, get_spool
from tests.calls.persistence.outage import initiate
from tests.factories import make_conversation, make_user
from tests.secureconnect.test_health import metric

# --- the spool's side (no database involved) -----------------------------------------------------


@pytest.fixture
def spool(tmp_path):
    return Spool(tmp_path / "spool.sqlite3", max_bytes=10**6, max_age=3600)


def journal(spool, call_id, step, *, operation="media"):
    with spool.write_transaction() as tx:
        return tx.append(
            call_id=call_id,
            conversation_id="c",
            status="active",
            operation=operation,
            payload={"call": call_id, "step": step},
        )


class Applier:
    """Records what it applied; raises UnappliableEntry for the calls named poison."""

    def __init__(self, *, poison=(), outage_on=()):
        self.applied = []
        self.poison = set(poison)
        self.outage_on = set(outage_on)

    def __call__(self, payload):
        if payload["call"] in self.outage_on:
            raise OperationalError("server closed the connection unexpectedly")
        if payload["call"] in self.poison:
            raise UnappliableEntry(f"IntegrityError: {payload['call']} violates a constraint")
        self.applied.append((payload["call"], payload["step"]))


@pytest.mark.portable
def test_an_entry_that_cannot_apply_is_quarantined_with_its_reason_and_the_replay_goes_on(spool):
    journal(spool, "a", 1)
    poison = journal(spool, "b", 1, operation="initiate")
    journal(spool, "c", 1)
    apply = Applier(poison={"b"})
    assert spool.replay(apply) == 2
    assert apply.applied == [("a", 1), ("c", 1)]
    assert spool.depth() == 0 and spool.quarantined_count() == 1
    [entry] = spool.quarantined()
    assert (entry["seq"], entry["call_id"], entry["operation"]) == (poison, "b", "initiate")
    assert entry["reason"] == "IntegrityError: b violates a constraint"
    assert entry["quarantined_at"] >= entry["written_at"] and entry["attempts"] == 1


@pytest.mark.portable
def test_the_older_entries_of_a_quarantined_call_stay_with_it(spool):
    journal(spool, "b", 1)
    journal(spool, "a", 1)
    journal(spool, "b", 2)
    spool.replay(Applier(poison={"b"}))
    assert [e["call_id"] for e in spool.quarantined()] == ["b", "b"]
    assert spool.depth() == 0


@pytest.mark.portable
def test_an_undecodable_entry_is_quarantined(spool):
    journal(spool, "a", 1)
    with spool._connect() as conn:
        conn.execute("UPDATE entries SET payload = '{not json' WHERE call_id = 'a'")
    journal(spool, "c", 1)
    apply = Applier()
    assert spool.replay(apply) == 1
    assert apply.applied == [("c", 1)]
    assert spool.quarantined()[0]["reason"].startswith("undecodable payload: ")


@pytest.mark.portable
def test_an_outage_mid_replay_quarantines_nothing_and_keeps_the_rest(spool):
    journal(spool, "a", 1)
    journal(spool, "b", 1)
    journal(spool, "c", 1)
    with pytest.raises(OperationalError):
        spool.replay(Applier(outage_on={"b"}))
    assert spool.quarantined_count() == 0
    assert spool.depth() == 2  # "a" applied and deleted; "b" and "c" kept for the next replay


@pytest.mark.portable
def test_the_final_drain_quarantines_too_and_still_closes_the_breaker(spool):
    journal(spool, "a", 1)
    journal(spool, "b", 1)
    closed = []
    assert spool.drain_and_then(Applier(poison={"a"}), lambda: closed.append(True)) == 1
    assert closed == [True]
    assert spool.depth() == 0 and [e["call_id"] for e in spool.quarantined()] == ["a"]


@pytest.mark.portable
def test_quarantined_entries_do_not_count_towards_depth_size_or_age(spool):
    journal(spool, "b", 1)
    spool.replay(Applier(poison={"b"}))
    assert (spool.depth(), spool.size_bytes()) == (0, 0)
    with spool._connect() as conn:  # quarantined long ago: the age limit looks at the journal only
        conn.execute("UPDATE quarantine SET written_at = written_at - 7200")
    journal(spool, "a", 1)
    assert spool.depth() == 1


@pytest.mark.portable
def test_retrying_applies_what_now_applies_and_keeps_the_rest_with_the_new_reason(spool):
    journal(spool, "a", 1)
    journal(spool, "b", 1)
    spool.replay(Applier(poison={"a", "b"}))
    apply = Applier(poison={"b"})
    assert spool.retry_quarantined(apply) == (1, 1)
    assert apply.applied == [("a", 1)]
    [entry] = spool.quarantined()
    assert (entry["call_id"], entry["attempts"]) == ("b", 2)


@pytest.mark.portable
def test_a_retry_during_an_outage_keeps_everything_quarantined(spool):
    journal(spool, "a", 1)
    spool.replay(Applier(poison={"a"}))
    with pytest.raises(OperationalError):
        spool.retry_quarantined(Applier(outage_on={"a"}))
    assert spool.quarantined_count() == 1


@pytest.mark.portable
def test_discarding_removes_exactly_one_and_logs_its_payload(spool, caplog):
    first = journal(spool, "a", 1)
    journal(spool, "b", 1)
    spool.replay(Applier(poison={"a", "b"}))
    with caplog.at_level(logging.WARNING, logger="calls.persistence"):
        entry = spool.discard_quarantined(first)
    assert entry["call_id"] == "a" and json.loads(entry["payload"]) == {"call": "a", "step": 1}
    assert [e["call_id"] for e in spool.quarantined()] == ["b"]
    assert f"Discarded quarantined call write {first} (call a, media" in caplog.text
    assert '{"call":"a","step":1}' in caplog.text
    assert spool.discard_quarantined(first) is None


@pytest.mark.portable
def test_the_quarantine_survives_a_new_process_object(spool):
    journal(spool, "b", 1)
    spool.replay(Applier(poison={"b"}))
    reopened = Spool(spool.path, max_bytes=10**6, max_age=3600)
    assert [e["call_id"] for e in reopened.quarantined()] == ["b"]


# --- the database's side (real PostgreSQL behind the proxy) -------------------------------------


def test_replay_entry_tells_a_poison_entry_from_an_outage(pair, db_proxy):
    caller, callee, conversation = pair
    db_proxy.down()
    payload = get_spool().latest(initiate(caller, callee, conversation).record.call.id)
    db_proxy.up()
    too_long = {**payload, "call": {**payload["call"], "status": "x" * 50}}
    with pytest.raises(UnappliableEntry, match=r"^DataError: value too long"):
        replay.replay_entry(too_long)
    with pytest.raises(UnappliableEntry, match=r"^KeyError: 'call'"):
        replay.replay_entry({"participants": []})
    db_proxy.down()
    with pytest.raises(Exception) as outage:  # while the database does not answer: an outage, not poison
        replay.replay_entry({"participants": []})
    assert not isinstance(outage.value, UnappliableEntry)
    db_proxy.up()
    replay.replay_entry(payload)
    assert CallParticipant.objects.filter(call_id=payload["call"]["id"]).count() == 2


def test_an_unappliable_entry_is_quarantined_the_service_recovers_and_a_retry_applies_it(pair, db_proxy, settings):
    """A journaled call whose callee has no account row (a foreign key no retry satisfies), then a
    good call: the replay quarantines the first, applies the second, and the service is
    operational; db_status, /metrics and /health/ready say so; once the account exists,
    replay_spool --quarantined applies it."""
    settings.DB_CONNECT_MAX_TRIES = 2
    settings.DB_CONNECT_BASE_DELAY = 0.05
    settings.DB_PROBE_MAX_DELAY = 0.2
    caller, callee, conversation = pair
    ghost = uuid.uuid4()
    snapshot_cache.remember_members(conversation.id, [caller.id, callee.id, ghost])  # a member the database lacks
    other_caller, other_callee = make_user(), make_user()
    other = make_conversation(members=[other_caller, other_callee])
    services.conversation_open(conversation_id=other.id, user_id=other_caller.id)
    db_proxy.down()
    poisoned = services.call_initiate(
        caller_id=caller.id, conversation_id=conversation.id, callee_ids=[ghost], call_type="audio"
    ).record.call.id
    good = initiate(other_caller, other_callee, other).record.call.id
    assert get_spool().depth() == 2

    db_proxy.up()
    supervisor = make_supervisor()
    supervisor.start()
    try:
        assert availability.wait_for(lambda s: s == availability.OPERATIONAL, timeout=10), (
            availability.status().last_error
        )
    finally:
        supervisor.stop()
    assert CallParticipant.objects.filter(call_id=good).count() == 2
    assert not Call.objects.filter(pk=poisoned).exists()
    spool = get_spool()
    assert spool.depth() == 0
    [entry] = spool.quarantined()
    assert entry["call_id"] == str(poisoned) and entry["operation"] == "initiate"
    assert entry["reason"].startswith("IntegrityError: ") and "foreign key" in entry["reason"]

    report = json.loads(run_command("db_status", "--json"))
    assert (report["state"], report["spool_depth"], report["spool_quarantined"]) == ("operational", 0, 1)
    assert report["quarantined"][0]["seq"] == entry["seq"]
    settings.METRICS_TOKEN = "operator-token-for-the-quarantine-test"
    operator = Client(HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}")
    scraped = operator.get("/metrics")
    assert scraped.status_code == 200, scraped.content[:200]
    assert metric(scraped.content.decode(), "secureconnect_spool_quarantined_entries") == 1
    ready = operator.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["spool_quarantined"] == 1

    make_user(id=ghost)  # the cause removed
    out = run_command("replay_spool", "--quarantined")
    assert "Applied 1 quarantined call write(s); 0 remain quarantined" in out
    assert set(CallParticipant.objects.filter(call_id=poisoned).values_list("user_id", flat=True)) == {
        caller.id,
        ghost,
    }
    assert spool.quarantined_count() == 0
    assert metric(operator.get("/metrics").content.decode(), "secureconnect_spool_quarantined_entries") == 0


def run_command(*argv) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*argv, stdout=out)
    return out.getvalue()
