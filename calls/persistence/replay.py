"""Writing journaled call states into the database: the replay's side of the spool.

Idempotent by natural key: a call is matched on its id, each participant on (call, user), and a
call the database holds in a newer state is left alone, so replaying an entry twice, or an entry
whose first commit landed although its answer was lost, changes nothing.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.db.models.constants import OnConflict

from calls.models import Call, CallParticipant, CallTimelineEvent
from calls.persistence.snapshots import decode_call
from calls.persistence.spool import UnappliableEntry
from core.db_errors import describe, is_ambiguous, is_permanent, is_serialization_failure, is_transient
from core.transactions import TransactionConflict, run_in_transaction

logger = logging.getLogger("calls.persistence")


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
    call, participants, timeline = decode_call(payload)

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
        # Events are only ever added, each with its natural key (call, seq): whatever a first
        # commit of this write or an earlier replay left, the events not yet there are inserted.
        CallTimelineEvent.objects.bulk_create(timeline, ignore_conflicts=True)

    run_in_transaction(apply)


def replay_entries(payloads: list[dict]) -> None:
    """Write many journaled call states (each of a different call) in one transaction: the
    replay's fast path, one round trip per table instead of several per entry.

    The same rules as ``replay_entry``: rows matched on their natural keys, and a call whose
    database state is newer is left alone. Raises ``UnappliableEntry`` when the batch fails for a
    reason that is not an outage; the spool then applies its entries one by one with
    ``replay_entry``, so that only the entry at fault is quarantined. Anything that heals by
    waiting propagates, with every entry kept.
    """
    try:
        records = [decode_call(payload) for payload in payloads]
        run_in_transaction(lambda: _apply_journaled_many(records))
    except Exception as exc:
        if _heals_by_waiting(exc):
            raise
        raise UnappliableEntry(f"{type(exc).__name__}: {describe(exc)}") from exc


def _apply_journaled_many(records: list[tuple[Call, list[CallParticipant], list[CallTimelineEvent]]]) -> None:
    ids = sorted(call.pk for call, _participants, _timeline in records)  # locks taken in one order
    held = dict(Call.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk", "updated_at"))
    fresh = [record for record in records if record[0].pk not in held or held[record[0].pk] <= record[0].updated_at]
    if len(fresh) < len(records):
        logger.info("Replay skipped %d call(s): the database holds a newer state", len(records) - len(fresh))
    _upsert(Call, [call for call, _parts, _timeline in fresh], unique=("id",))
    _upsert(CallParticipant, [p for _call, parts, _timeline in fresh for p in parts], unique=("call", "user"))
    # A newer state in the database holds every event of an older one; of the others, the
    # events not yet there are inserted (their natural key is (call, seq)).
    CallTimelineEvent.objects.bulk_create(
        [event for _call, _parts, timeline in fresh for event in timeline], ignore_conflicts=True, batch_size=1000
    )


def _upsert(model, objs: list, *, unique: tuple[str, ...]) -> None:
    """INSERT ... ON CONFLICT (unique) DO UPDATE, with every value as journaled.

    Through ``QuerySet._insert(raw=True)`` (what ``Model.save_base(raw=True)`` uses) because
    ``bulk_create`` would stamp ``auto_now`` fields with the replay's time, and ``updated_at``
    is what the never-overwrite-a-newer-state rule compares."""
    if not objs:
        return
    meta = model._meta
    fields = list(meta.local_concrete_fields)
    unique_fields = [meta.get_field(name) for name in unique]
    update_fields = [f for f in fields if not f.primary_key and f not in unique_fields]
    size = connection.ops.bulk_batch_size(fields, objs) or len(objs)
    for start in range(0, len(objs), size):
        model._base_manager._insert(
            objs[start : start + size],
            fields=fields,
            raw=True,
            on_conflict=OnConflict.UPDATE,
            update_fields=update_fields,
            unique_fields=unique_fields,
        )


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
