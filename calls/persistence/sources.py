"""Where a call write reads what it needs and saves its result: the database (inside the write's
transaction, the call's row locked) or, while the database is away, the spool (inside the
journal's write lock, falling back to the snapshot cache). ``calls.persistence.routing`` picks
one; the write itself (``mutate``) is the same either way."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.postgres.aggregates import JSONBAgg
from django.db import transaction
from django.db.models import DateTimeField, F, Func, JSONField, Subquery, TextField, Value
from django.db.models.functions import Cast

from calls import lifecycle
from calls.exceptions import PersistenceUnavailable
from calls.models import Call, CallParticipant, CallTimelineEvent, ConversationParticipant
from calls.persistence import snapshot_cache
from calls.persistence import spool as spool_module
from calls.persistence.snapshots import decode_call, encode_call
from core.compiled_sql import CompiledRead, batches_statements, insert_rows, one_round_trip, update_rows


@dataclass
class CallRecord:
    call: Call
    participants: list[CallParticipant]
    timeline: list[CallTimelineEvent] = field(default_factory=list)  # in seq order (calls.timeline)


@dataclass
class ConversationState:
    """What starting a call in a conversation checks: who is in it, and its live calls (newest first)."""

    member_ids: set[str]
    live_call_ids: list[str]


# The reads of every call write, compiled once per thread (core/compiled_sql.py).
_timeline_read = CompiledRead(
    lambda call_id: CallTimelineEvent.objects.filter(call_id=call_id).order_by("seq"),
    field=CallTimelineEvent._meta.get_field("call"),
)


def _participants_with_call(call_id):
    """A call's participants in their order, each with the call (a call always has its caller's
    row: none means no call)."""
    return CallParticipant.objects.select_related("call").filter(call_id=call_id).order_by("role", "id")


# The participants with their call, the call's row locked, in one query.
_locked_call_read = CompiledRead(
    lambda call_id: _participants_with_call(call_id).select_for_update(of=("call",)),
    field=CallParticipant._meta.get_field("call"),
)

# Where the database takes several statements at once (PostgreSQL, CockroachDB): the call's row
# locked, then the participants with their call and its timeline, in one round trip. The timeline
# comes as one JSON array on each participant's row ([id, seq, at, kind, actor id, detail] per
# event, in order), read after the lock was granted: it holds what the write before this one added.
_TIMELINE_COLUMNS = ("id", "seq", "at", "kind", "actor_id", "detail")


def _timeline_as_json(call_id):
    events = Func(*(F(name) for name in _TIMELINE_COLUMNS), function="JSONB_BUILD_ARRAY", output_field=JSONField())
    return (
        CallTimelineEvent.objects.filter(call_id=call_id)
        .order_by()
        .values("call_id")
        .annotate(events=Cast(JSONBAgg(events, order_by="seq"), output_field=TextField()))
        .values("events")
    )


_locked_call_and_timeline_read = CompiledRead(
    lambda call_id: _participants_with_call(call_id).annotate(timeline_json=Subquery(_timeline_as_json(call_id))),
    field=CallParticipant._meta.get_field("call"),
    lock=lambda call_id: Call.objects.select_for_update().filter(pk=call_id).order_by().values_list("pk"),
)


_EVENT_FIELDS = [f.attname for f in CallTimelineEvent._meta.concrete_fields]


def _timeline_from_json(call_id, text: str | None) -> list[CallTimelineEvent]:
    """The events of ``_timeline_as_json`` as loaded instances (a column the JSON lacks is a KeyError)."""
    events = []
    for event_id, seq, at, kind, actor_id, detail in json.loads(text or "[]"):
        values = {
            "id": uuid.UUID(event_id),
            "call_id": call_id,
            "seq": seq,
            "at": datetime.fromisoformat(at),
            "kind": kind,
            "actor_id": uuid.UUID(actor_id) if actor_id else None,
            "detail": detail,
        }
        events.append(CallTimelineEvent.from_db("default", _EVENT_FIELDS, [values[name] for name in _EVENT_FIELDS]))
    return events


def _conversation_state_query(conversation_id):
    """The members (a user id per row, no time) and the live calls (a call id and when it
    started) of a conversation, in one query."""
    members = (
        ConversationParticipant.objects.filter(conversation_id=conversation_id)
        .annotate(live_since=Value(None, output_field=DateTimeField()))
        .values_list("user_id", "live_since")
        .order_by()  # a compound statement's parts may not be ordered (SQLite)
    )
    live = (
        Call.objects.filter(conversation_id=conversation_id, status__in=lifecycle.LIVE_STATUSES)
        .values_list("pk", "started_at")
        .order_by()
    )
    return members.union(live, all=True)


_conversation_state_read = CompiledRead(
    _conversation_state_query, field=ConversationParticipant._meta.get_field("conversation")
)


def timeline_of(call_id) -> list[CallTimelineEvent]:
    """A call's timeline as the database holds it, oldest first."""
    return _timeline_read(call_id)


def _columns(instance) -> tuple:
    return tuple(field.value_from_object(instance) for field in instance._meta.concrete_fields)


def _save_changes(instances: list, loaded: dict) -> None:
    """Save each of ``instances``: all of it when it is new, else only the columns that changed
    since it was loaded (``loaded``: pk -> ``_columns`` as read), with its ``auto_now`` times,
    by an UPDATE compiled once per shape (``core.compiled_sql``); nothing when none changed.
    Rows changed alike (the same columns to the same values: the participants of a call that
    ends) share one UPDATE."""
    alike: dict[tuple, list] = {}
    for instance in instances:
        columns = loaded.get(instance.pk)
        if instance._state.adding:
            insert_rows([instance])
            continue
        if columns is None:  # not loaded by this write (none is today): the ORM's save, sent at once
            instance.save()
            continue
        fields = instance._meta.concrete_fields
        changed = [
            field.name for field, old in zip(fields, columns, strict=True) if field.value_from_object(instance) != old
        ]
        if changed:
            changed += [f.name for f in fields if getattr(f, "auto_now", False) and f.name not in changed]
            values = tuple(instance._meta.get_field(name).value_from_object(instance) for name in changed)
            alike.setdefault((type(instance), tuple(changed), values), []).append(instance)
    for (_, names, _), rows in alike.items():
        update_rows(rows, list(names))


class DatabaseSource:
    """Reads inside the write's transaction, with the call's row locked."""

    deferred = False

    def __init__(self):
        self._loaded: dict = {}  # pk (the call's, each participant's) -> its columns as loaded
        self._members: tuple | None = None  # (conversation id, member ids) read by this write

    def load_call(self, call_id) -> CallRecord | None:
        together = batches_statements()
        participants = (_locked_call_and_timeline_read if together else _locked_call_read)(call_id)
        if not participants:
            return None
        call = participants[0].call
        for participant in participants:
            participant.call = call  # one instance, the one the write changes
        self._loaded = {p.pk: _columns(p) for p in [call, *participants]}
        timeline = _timeline_from_json(call.id, participants[0].timeline_json) if together else timeline_of(call_id)
        return CallRecord(call, participants, timeline)

    def conversation_state(self, conversation_id) -> ConversationState | None:
        """The members and live calls (``_conversation_state_query``); None when the
        conversation does not exist."""
        rows = _conversation_state_read(conversation_id)
        member_ids = {str(pk) for pk, live_since in rows if live_since is None}
        if not member_ids:
            return None
        self._members = (conversation_id, member_ids)
        calls = sorted(((since, str(pk)) for pk, since in rows if since is not None), reverse=True)
        return ConversationState(member_ids, [pk for _, pk in calls])

    def save(self, record: CallRecord, *, created: bool, operation: str) -> None:
        with one_round_trip():  # the write's rows, sent in one statement (core.compiled_sql)
            if created:
                insert_rows([record.call])
                insert_rows(record.participants)
            else:
                _save_changes([record.call, *record.participants], self._loaded)
            # The events this write added (those loaded with the call are already there).
            insert_rows([e for e in record.timeline if e._state.adding])
        # Only once committed: a commit whose answer is lost is journaled again, computed from the
        # snapshot as it stood before this write (a snapshot of a commit that may never have
        # happened would make the journaled write a no-op, and lose it).
        transaction.on_commit(lambda: snapshot_cache.remember_call(record, members=self._members))


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

    def conversation_state(self, conversation_id) -> ConversationState:
        members = snapshot_cache.cached_members(conversation_id)
        if members is None:
            raise PersistenceUnavailable(
                "The database is unavailable and this conversation is not known locally; try again shortly."
            )
        live = [
            payload["call"]["id"]
            for payload in self.tx.latest_in_conversation(conversation_id)
            if payload["call"]["status"] in lifecycle.LIVE_STATUSES
        ]
        return ConversationState(set(members), live)

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
