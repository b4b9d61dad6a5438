"""Where a call write goes: the database when it is there, the spool when it is not.

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
and participant ids do not change between runs (``lifecycle.participant_id``), and
``replay_entry`` matches rows on their natural keys: the replay converges to one row set
whether or not the first commit landed.

The snapshot cache (the Django cache: Redis when configured) keeps each call's latest state and
each conversation's members, so that calls begun before an outage can still be acted on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, IntegrityError, connection, transaction

from calls import lifecycle
from calls.exceptions import PersistenceUnavailable
from calls.models import Call, CallParticipant, ConversationParticipant
from calls.persistence import spool as spool_module
from calls.persistence import state
from calls.persistence.snapshots import decode_call, encode_call
from calls.persistence.spool import UnappliableEntry
from core.db_errors import describe, is_ambiguous, is_permanent, is_serialization_failure, is_transient
from core.transactions import TransactionConflict, run_in_transaction

logger = logging.getLogger(__name__)

CACHE_TTL_SECONDS = 24 * 3600


@dataclass
class CallRecord:
    call: Call
    participants: list[CallParticipant]


@dataclass
class WriteResult:
    record: CallRecord
    outcome: lifecycle.Outcome
    deferred: bool = False
    extra: dict = field(default_factory=dict)


# --- snapshot cache ----------------------------------------------------------------------------


def _call_key(call_id) -> str:
    return f"calls:snapshot:{call_id}"


def _members_key(conversation_id) -> str:
    return f"calls:members:{conversation_id}"


def remember_call(record: CallRecord) -> None:
    _cache_set(_call_key(record.call.id), encode_call(record.call, record.participants))


def remember_members(conversation_id, member_ids) -> None:
    _cache_set(_members_key(conversation_id), sorted(str(m) for m in member_ids))


def _cache_set(key: str, value) -> None:
    try:
        cache.set(key, value, CACHE_TTL_SECONDS)
    except Exception as exc:  # the cache is a convenience; never fail a write for it
        logger.warning("Snapshot cache unavailable: %s", describe(exc))


def _cache_get(key: str):
    try:
        return cache.get(key)
    except Exception as exc:
        logger.warning("Snapshot cache unavailable: %s", describe(exc))
        return None


# --- sources -----------------------------------------------------------------------------------


class DatabaseSource:
    """Reads inside the write's transaction, with the call's row locked."""

    deferred = False

    def load_call(self, call_id) -> CallRecord | None:
        call = Call.objects.select_for_update().filter(pk=call_id).first()
        if call is None:
            return None
        participants = list(CallParticipant.objects.filter(call_id=call_id).order_by("role", "id"))
        return CallRecord(call, participants)

    def conversation_member_ids(self, conversation_id) -> set[str] | None:
        """None when the conversation does not exist."""
        ids = {
            str(user_id)
            for user_id in ConversationParticipant.objects.filter(conversation_id=conversation_id).values_list(
                "user_id", flat=True
            )
        }
        if ids:
            remember_members(conversation_id, ids)
        return ids or None

    def live_call_ids(self, conversation_id) -> list[str]:
        return [
            str(pk)
            for pk in Call.objects.filter(conversation_id=conversation_id, status__in=lifecycle.LIVE_STATUSES)
            .order_by("-started_at")
            .values_list("pk", flat=True)
        ]

    def save(self, record: CallRecord, *, created: bool, operation: str) -> None:
        if created:
            record.call.save(force_insert=True)
            CallParticipant.objects.bulk_create(record.participants)
        else:
            record.call.save()
            for participant in record.participants:
                participant.save()
        # Only once committed: a commit whose answer is lost is journaled again, computed from the
        # snapshot as it stood before this write (a snapshot of a commit that may never have
        # happened would make the journaled write a no-op, and lose it).
        transaction.on_commit(lambda: remember_call(record))


class SpoolSource:
    """Reads the journal (then the snapshot cache) inside the journal's write lock."""

    deferred = True

    def __init__(self, tx: spool_module.SpoolTransaction):
        self.tx = tx

    def load_call(self, call_id) -> CallRecord | None:
        payload = self.tx.latest(call_id) or _cache_get(_call_key(call_id))
        if payload is None:
            raise PersistenceUnavailable(
                "The database is unavailable and this call is not known locally; try again shortly."
            )
        return CallRecord(*decode_call(payload))

    def conversation_member_ids(self, conversation_id) -> set[str] | None:
        members = _cache_get(_members_key(conversation_id))
        if members is None:
            raise PersistenceUnavailable(
                "The database is unavailable and this conversation is not known locally; try again shortly."
            )
        return set(members)

    def live_call_ids(self, conversation_id) -> list[str]:
        return [
            payload["call"]["id"]
            for payload in self.tx.latest_in_conversation(conversation_id)
            if payload["call"]["status"] in lifecycle.LIVE_STATUSES
        ]

    def save(self, record: CallRecord, *, created: bool, operation: str) -> None:
        self.tx.append(
            call_id=record.call.id,
            conversation_id=record.call.conversation_id,
            status=record.call.status,
            operation=operation,
            payload=encode_call(record.call, record.participants),
        )
        remember_call(record)


Mutation = Callable[[CallRecord | None, DatabaseSource | SpoolSource], tuple[CallRecord, lifecycle.Outcome]]


def _database_first() -> bool:
    """Writes go to the database when it is operational, and while starting only if nothing is
    journaled: a restarted process must not write past calls its journal still holds."""
    current = state.current()
    if current == state.OPERATIONAL:
        return True
    return current == state.STARTING and spool_module.get_spool().depth() == 0


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
                from calls.persistence import supervisor

                supervisor.report_outage(exc)
        with spool_module.get_spool().write_transaction() as tx:
            if state.current() == state.OPERATIONAL:
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


def read_call(call_id) -> tuple[CallRecord | None, bool]:
    """The call for a read, and whether it came from the journal rather than the database."""
    if not state.is_operational():
        # Until the journal is replayed it holds the newest state of the calls it knows.
        payload = spool_module.get_spool().latest(call_id)
        if payload is not None:
            return CallRecord(*decode_call(payload)), True
    if not state.is_limited():
        try:
            call = Call.objects.filter(pk=call_id).first()
            if call is None:
                return None, False
            return CallRecord(call, list(call.participants.order_by("role", "id"))), False
        except DatabaseError as exc:
            if not is_transient(exc):
                raise
            from calls.persistence import supervisor

            supervisor.report_outage(exc)
    payload = spool_module.get_spool().latest(call_id) or _cache_get(_call_key(call_id))
    if payload is None:
        raise PersistenceUnavailable(
            "The database is unavailable and this call is not known locally; try again shortly."
        )
    return CallRecord(*decode_call(payload)), True


def replay_entry(payload: dict) -> None:
    """Write one journaled call state into the database, unless the database holds a newer one.

    Idempotent by natural key, whatever the database already holds of the call: the call is
    matched on its id (generated before the write's first attempt) and each participant on
    (call, user), never on a primary key a second run of the same write could have changed. A
    state the database already has, or a newer one, changes nothing.

    Raises ``UnappliableEntry`` (the spool quarantines the entry and goes on) when the entry
    fails twice for a reason that is not an outage (a constraint, a payload that does not
    decode, a bug) while the database answers; anything that heals by waiting propagates and
    stops the replay with the entry kept.
    """
    try:
        _apply_journaled(payload)
    except Exception as exc:
        if _heals_by_waiting(exc):
            raise
    else:
        return
    try:  # once more in a fresh transaction: a concurrent replayer may have written the same rows
        _apply_journaled(payload)
    except Exception as exc:
        if _heals_by_waiting(exc) or not _database_answers():
            raise
        raise UnappliableEntry(f"{type(exc).__name__}: {describe(exc)}") from exc


def _apply_journaled(payload: dict) -> None:
    call, participants = decode_call(payload)

    def apply():
        current = Call.objects.select_for_update().filter(pk=call.pk).values_list("updated_at", flat=True).first()
        if current is not None and current > call.updated_at:
            logger.info("Replay skipped call %s: the database holds a newer state", call.pk)
            return
        call.save_base(raw=True)
        existing = dict(CallParticipant.objects.filter(call_id=call.pk).values_list("user_id", "pk"))
        for participant in participants:
            participant.pk = existing.get(participant.user_id, participant.pk)
            participant.save_base(raw=True)

    run_in_transaction(apply)


def _heals_by_waiting(exc: BaseException) -> bool:
    """An outage, a conflict or an unknown outcome: replay the entry later, as it is."""
    if isinstance(exc, TransactionConflict | OSError):
        return True
    if isinstance(exc, DatabaseError) and (is_permanent(exc) or is_serialization_failure(exc) or is_ambiguous(exc)):
        return True
    return is_transient(exc)


def _database_answers() -> bool:
    """Whether the database answers now: a failure while it does not is an outage, not a poison entry."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DatabaseError:
        return False


def guard_available() -> None:
    """For reads that only the database can answer (history, analytics)."""
    if state.is_limited():
        raise PersistenceUnavailable(retry_after=settings.PERSISTENCE_RETRY_AFTER)
