"""The spool on its own (no database): a durable journal, read newest-first per call, replayed
oldest-first exactly as far as it was when the replay began, never dropping what it holds."""

import multiprocessing
import threading
import time

import pytest

from calls.persistence.spool import Spool, SpoolFull, UnappliableEntry

pytestmark = pytest.mark.portable


@pytest.fixture
def spool(tmp_path):
    return Spool(tmp_path / "spool.sqlite3", max_bytes=10**6, max_age=3600)


def journal(spool, call_id, step, *, conversation="c", status="active"):
    with spool.write_transaction() as tx:
        return tx.append(
            call_id=call_id,
            conversation_id=conversation,
            status=status,
            operation="test",
            payload={"call": call_id, "step": step, "status": status, "conversation": conversation},
        )


class Recorder:
    def __init__(self, *, fail_on=None):
        self.applied = []
        self.batches = []
        self.fail_on = fail_on

    def one(self, payload):
        if self.fail_on and (payload["call"], payload["step"]) == self.fail_on:
            raise RuntimeError("the database went away")
        self.applied.append((payload["call"], payload["step"]))

    def many(self, payloads):
        self.batches.append([(p["call"], p["step"]) for p in payloads])


def test_an_entry_is_on_disk_for_the_next_process(spool):
    journal(spool, "a", 1)
    reopened = Spool(spool.path, max_bytes=10**6, max_age=3600)
    assert reopened.depth() == 1
    assert reopened.latest("a") == {"call": "a", "step": 1, "status": "active", "conversation": "c"}


def test_reads_see_the_newest_state_of_each_call(spool):
    journal(spool, "a", 1, status="ringing")
    journal(spool, "b", 1, conversation="other")
    journal(spool, "a", 2, status="ended")
    assert spool.latest("a")["step"] == 2
    assert spool.latest("nobody") is None
    assert [p["call"] for p in spool.latest_with_status("ended")] == ["a"]
    assert spool.latest_with_status("ringing") == []  # a's newest state is no longer ringing
    with spool.write_transaction() as tx:
        assert [p["call"] for p in tx.latest_in_conversation("c")] == ["a"]


def test_replay_applies_the_newest_entry_of_each_call_oldest_first_and_deletes_them(spool):
    journal(spool, "a", 1)
    journal(spool, "b", 1)
    journal(spool, "a", 2)
    recorder = Recorder()
    assert spool.replay(recorder.one) == 3
    assert recorder.applied == [("b", 1), ("a", 2)]
    assert spool.depth() == 0


def test_an_outage_during_replay_keeps_every_entry_not_yet_applied(spool):
    journal(spool, "a", 1)
    journal(spool, "b", 1)
    journal(spool, "c", 1)
    recorder = Recorder(fail_on=("b", 1))
    with pytest.raises(RuntimeError):
        spool.replay(recorder.one)
    assert recorder.applied == [("a", 1)]
    assert spool.depth() == 2 and spool.latest("a") is None
    assert spool.replay(Recorder().one) == 2


def test_replay_stops_at_what_was_journaled_when_it_began(spool):
    journal(spool, "a", 1)
    recorder = Recorder()

    def apply_and_journal_more(payload):
        recorder.one(payload)
        journal(spool, "late", 1)  # a client writing while the replay runs

    assert spool.replay(apply_and_journal_more) == 1
    assert spool.depth() == 1 and spool.latest("late") is not None


def test_a_chunk_is_applied_in_one_call_when_apply_many_is_given(spool):
    for call in ("a", "b", "c"):
        journal(spool, call, 1)
    journal(spool, "a", 2)
    recorder = Recorder()
    assert spool.replay(recorder.one, apply_many=recorder.many, chunk=500) == 4
    assert recorder.batches == [[("b", 1), ("c", 1), ("a", 2)]]
    assert recorder.applied == []


def test_a_chunk_that_cannot_apply_in_one_call_is_applied_entry_by_entry(spool):
    for call in ("a", "b"):
        journal(spool, call, 1)
    recorder = Recorder()

    def refuse(_payloads):
        raise UnappliableEntry("one of them is at fault")

    assert spool.replay(recorder.one, apply_many=refuse) == 2
    assert recorder.applied == [("a", 1), ("b", 1)]


def test_a_full_spool_refuses_new_writes_and_keeps_what_it_holds(tmp_path):
    small = Spool(tmp_path / "small.sqlite3", max_bytes=1024, max_age=3600)
    journal(small, "a", 1)
    with pytest.raises(SpoolFull) as refused, small.write_transaction() as tx:
        tx.append(call_id="b", conversation_id="c", status="active", operation="x", payload={"pad": "x" * 2000})
    assert refused.value.details["spool_max_bytes"] == 1024
    assert small.depth() == 1 and small.latest("a") is not None


def test_a_spool_older_than_its_age_limit_refuses_new_writes(tmp_path):
    young = Spool(tmp_path / "young.sqlite3", max_bytes=10**6, max_age=0.2)
    journal(young, "a", 1)
    time.sleep(0.3)
    with pytest.raises(SpoolFull, match="longer than the call journal may hold"):
        journal(young, "b", 1)
    assert young.depth() == 1


def test_drain_closes_the_breaker_before_any_writer_can_journal_again(spool):
    """``on_empty`` runs with the journal locked: a writer blocked meanwhile appends only after
    it, so nothing journaled can be left behind an ``operational`` state."""
    journal(spool, "a", 1)
    order = []
    writer_started = threading.Event()

    def writer():
        writer_started.set()
        journal(spool, "b", 1)
        order.append("journaled b")

    def apply(payload):
        threading.Thread(target=writer, daemon=True).start()
        writer_started.wait(5)
        time.sleep(0.1)  # the writer is now waiting for the journal's lock
        order.append(f"applied {payload['call']}")

    thread_count = threading.active_count()
    assert spool.drain_and_then(apply, lambda: order.append("operational")) == 1
    for _ in range(100):
        if "journaled b" in order:
            break
        time.sleep(0.05)
    assert order == ["applied a", "operational", "journaled b"]
    assert threading.active_count() <= thread_count + 1


def _append_many(path: str, label: str, count: int) -> None:
    spool = Spool(path, max_bytes=10**8, max_age=3600)
    for step in range(count):
        journal(spool, f"{label}-{step}", step)


def test_two_processes_journal_into_one_file_without_losing_an_entry(spool):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(spool.path), label, 50)) for label in ("x", "y")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert spool.depth() == 100
    assert spool.latest("x-49")["step"] == 49 and spool.latest("y-0")["step"] == 0
