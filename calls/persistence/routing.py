"""Where a call write goes: the database when it is there, the spool when it is not; and where a
call read comes from.

Services describe a write as ``mutate(record, source) -> (record, outcome)``: a pure change of
the call (``calls.lifecycle``) given what ``source`` knows. ``execute_call_write`` runs it
against the database (row lock, 40001 retries) or, while the database is away, against the
spool (journal lock), and saves the result where it ran. A connection failure in the middle
of a database write opens the breaker and the same write is journaled instead: the client
never sees a 500 for an outage.

A write whose commit outcome is unknown (the connection died during COMMIT, or CockroachDB
answered "result is ambiguous", SQLSTATE 40003) is journaled the same way, although its first
commit may have landed. That is safe because the journaled state is the same write computed
again from the state before it (the snapshot cache is only updated after a commit), the call id
and participant ids do not change between runs (``lifecycle.participant_id``), and the replay
(``calls.persistence.replay``) matches rows on their natural keys (timeline events on (call,
seq), inserted only when missing): it converges to one row set
whether or not the first commit landed.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import DatabaseError, IntegrityError

from calls import lifecycle
from calls.exceptions import PersistenceUnavailable
from calls.models import Call
from calls.persistence import availability, snapshot_cache
from calls.persistence import spool as spool_module
from calls.persistence.snapshots import decode_call
from calls.persistence.sources import CallRecord, DatabaseSource, Mutation, SpoolSource, timeline_of
from core.db_errors import is_ambiguous, is_transient
from core.transactions import run_in_transaction


@dataclass
class WriteResult:
    record: CallRecord
    outcome: lifecycle.Outcome
    deferred: bool = False


def _database_first() -> bool:
    """Writes go to the database when it is operational, and while starting only if nothing is
    journaled: a restarted process must not write past calls its journal still holds."""
    current = availability.current()
    if current == availability.OPERATIONAL:
        return True
    return current == availability.STARTING and spool_module.get_spool().depth() == 0


def execute_call_write(*, operation: str, call_id, mutate: Mutation, creates: bool = False) -> WriteResult:
    """Run one call write where it can be made durable now. See the module docstring.

    ``creates``: the call is new (its id was just generated), so there is nothing to load."""
    uncertain = False  # a database attempt failed in a way that may have committed it
    for _ in range(3):
        if _database_first():
            try:
                return run_in_transaction(
                    lambda may_exist=uncertain: _run(
                        operation, call_id, mutate, DatabaseSource(), creates, may_exist=may_exist
                    )
                )
            except DatabaseError as exc:
                if isinstance(exc, IntegrityError) or not (is_transient(exc) or is_ambiguous(exc)):
                    raise
                uncertain = True
                availability.report_outage(exc)
        with spool_module.get_spool().write_transaction() as tx:
            if availability.current() == availability.OPERATIONAL:
                continue  # the breaker closed while we waited for the journal: use the database
            return _run(operation, call_id, mutate, SpoolSource(tx), creates)
    raise PersistenceUnavailable()


def _run(operation, call_id, mutate: Mutation, source, creates: bool, *, may_exist: bool = False) -> WriteResult:
    if creates and may_exist:
        # An earlier attempt of this very write may have committed although its answer was lost:
        # then the call is there, and it is this write's result (not a conflict with itself).
        existing = source.load_call(call_id)
        if existing is not None:
            return WriteResult(existing, lifecycle.Outcome(changed=True), deferred=source.deferred)
    record = None if creates else source.load_call(call_id)
    new_record, outcome = mutate(record, source)
    if outcome.changed:
        source.save(new_record, created=record is None, operation=operation)
    return WriteResult(new_record, outcome, deferred=source.deferred)


def read_call(call_id, *, with_timeline: bool = False) -> tuple[CallRecord | None, bool]:
    """The call for a read, and whether it came from the journal rather than the database. The
    database's timeline is read only ``with_timeline`` (the one-call answer): a socket's check and
    the presence sweep do not need it (a journaled state always carries it)."""
    if not availability.is_operational():
        # Until the journal is replayed it holds the newest state of the calls it knows.
        payload = spool_module.get_spool().latest(call_id)
        if payload is not None:
            return CallRecord(*decode_call(payload)), True
    if not availability.is_limited():
        try:
            call = Call.objects.filter(pk=call_id).first()
            if call is None:
                return None, False
            participants = list(call.participants.order_by("role", "id"))
            return CallRecord(call, participants, timeline_of(call_id) if with_timeline else []), False
        except DatabaseError as exc:
            if not is_transient(exc):
                raise
            availability.report_outage(exc)
    payload = spool_module.get_spool().latest(call_id) or snapshot_cache.cached_call(call_id)
    if payload is None:
        raise PersistenceUnavailable(
            "The database is unavailable and this call is not known locally; try again shortly."
        )
    return CallRecord(*decode_call(payload)), True
