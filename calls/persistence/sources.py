"""Where a call write reads what it needs and saves its result: the database (inside the write's
transaction, the call's row locked) or, while the database is away, the spool (inside the
journal's write lock, falling back to the snapshot cache). ``calls.persistence.routing`` picks
one; the write itself (``mutate``) is the same either way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction

from calls import lifecycle
from calls.exceptions import PersistenceUnavailable
from calls.models import Call, CallParticipant, CallTimelineEvent, ConversationParticipant
from calls.persistence import snapshot_cache
from calls.persistence import spool as spool_module
from calls.persistence.snapshots import decode_call, encode_call


@dataclass
class CallRecord:
    call: Call
    participants: list[CallParticipant]
    timeline: list[CallTimelineEvent] = field(default_factory=list)  # in seq order (calls.timeline)


def timeline_of(call_id) -> list[CallTimelineEvent]:
    """A call's timeline as the database holds it, oldest first."""
    return list(CallTimelineEvent.objects.filter(call_id=call_id).order_by("seq"))


class DatabaseSource:
    """Reads inside the write's transaction, with the call's row locked."""

    deferred = False

    def load_call(self, call_id) -> CallRecord | None:
        call = Call.objects.select_for_update().filter(pk=call_id).first()
        if call is None:
            return None
        participants = list(CallParticipant.objects.filter(call_id=call_id).order_by("role", "id"))
        return CallRecord(call, participants, timeline_of(call_id))

    def conversation_member_ids(self, conversation_id) -> set[str] | None:
        """None when the conversation does not exist."""
        ids = {
            str(user_id)
            for user_id in ConversationParticipant.objects.filter(conversation_id=conversation_id).values_list(
                "user_id", flat=True
            )
        }
        if ids:
            snapshot_cache.remember_members(conversation_id, ids)
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
        # The events this write added (those loaded with the call are already there).
        CallTimelineEvent.objects.bulk_create([e for e in record.timeline if e._state.adding])
        # Only once committed: a commit whose answer is lost is journaled again, computed from the
        # snapshot as it stood before this write (a snapshot of a commit that may never have
        # happened would make the journaled write a no-op, and lose it).
        transaction.on_commit(lambda: snapshot_cache.remember_call(record))


class SpoolSource:
    """Reads the journal (then the snapshot cache) inside the journal's write lock."""

    deferred = True

    def __init__(self, tx: spool_module.SpoolTransaction):
        self.tx = tx

    def load_call(self, call_id) -> CallRecord | None:
        payload = self.tx.latest(call_id) or snapshot_cache.cached_call(call_id)
        if payload is None:
            raise PersistenceUnavailable(
                "The database is unavailable and this call is not known locally; try again shortly."
            )
        return CallRecord(*decode_call(payload))

    def conversation_member_ids(self, conversation_id) -> set[str] | None:
        members = snapshot_cache.cached_members(conversation_id)
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
            payload=encode_call(record.call, record.participants, record.timeline),
        )
        snapshot_cache.remember_call(record)


Mutation = Callable[[CallRecord | None, DatabaseSource | SpoolSource], tuple[CallRecord, lifecycle.Outcome]]
