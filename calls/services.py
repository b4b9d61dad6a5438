"""Call writes. Each service checks who may do what, applies the lifecycle rule, lets the
persistence layer make it durable (database, or the spool while the database is away), and
publishes the events clients hear about, after the write is durable.

All take keyword arguments and user ids (not user objects): an access token is enough to
call them, so they work while the database is away.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError
from django.utils import timezone

from calls import events, lifecycle, presence, selectors, timeline
from calls.access import require_participant
from calls.events import CallEvent, EventType
from calls.exceptions import (
    CallAlreadyLive,
    CallError,
    CallFull,
    CallNotFound,
    ConversationNotFound,
    InvalidCallRequest,
    NotAParticipant,
)
from calls.models import Call, CallParticipant, Conversation, ConversationParticipant, direct_key_for
from calls.persistence import availability, routing, snapshot_cache
from calls.persistence.database_only import database_only_write, guard_available
from calls.persistence.routing import WriteResult
from calls.persistence.snapshots import decode_call
from calls.persistence.sources import CallRecord
from calls.persistence.spool import get_spool
from calls.representation import call_to_dict

logger = logging.getLogger(__name__)

Status = Call.Status


# --- conversations -------------------------------------------------------------------------------


def conversation_create(*, creator_id, type: str, title: str = "", member_ids) -> tuple[Conversation, bool]:
    """A conversation with the creator (admin) and the members, and whether it is new. Needs
    the database.

    A direct conversation is unique per pair: when the two already have one, that one is
    returned (``created`` false) and ``title`` is ignored. The unique ``direct_key`` holds this
    against simultaneous creates: the loser's insert fails (a serialization failure, retried by
    ``run_in_transaction``, or a unique violation), and it then finds the winner's row."""
    from accounts.models import User

    guard_available()
    members = {str(m) for m in member_ids} - {str(creator_id)}
    if type == Conversation.Type.DIRECT and len(members) != 1:
        raise InvalidCallRequest(
            "A direct conversation has exactly one other member.",
            details={"member_ids": ["Give exactly one other member."]},
        )
    if not members:
        raise InvalidCallRequest(
            "A conversation needs at least one other member.",
            details={"member_ids": ["Give at least one other member."]},
        )
    direct_key = direct_key_for(creator_id, next(iter(members))) if type == Conversation.Type.DIRECT else None

    def existing_direct():
        return Conversation.objects.filter(direct_key=direct_key).first() if direct_key else None

    def create():
        found = {str(pk) for pk in User.objects.filter(pk__in=members, is_active=True).values_list("pk", flat=True)}
        missing = sorted(members - found)
        if missing:
            raise InvalidCallRequest("Some members do not exist.", details={"member_ids": missing})
        existing = existing_direct()
        if existing is not None:
            return existing, False
        conversation = Conversation.objects.create(
            type=type, title=title, created_by_id=creator_id, direct_key=direct_key
        )
        ConversationParticipant.objects.bulk_create(
            [
                ConversationParticipant(
                    conversation=conversation, user_id=creator_id, role=ConversationParticipant.Role.ADMIN
                )
            ]
            + [ConversationParticipant(conversation=conversation, user_id=m) for m in sorted(members)]
        )
        return conversation, True

    try:
        conversation, created = database_only_write(create)
    except IntegrityError:
        # A simultaneous create of the same pair committed first: answer with its conversation.
        conversation, created = database_only_write(existing_direct), False
        if conversation is None:
            raise
    snapshot_cache.remember_members(conversation.id, members | {str(creator_id)})
    return conversation, created


def conversation_open(*, conversation_id, user_id) -> Conversation:
    """A conversation as one of its members opens it (``selectors.conversation_get_for_user``),
    remembering its members in the snapshot cache: a call started in it while the database is
    away needs them."""
    conversation = selectors.conversation_get_for_user(conversation_id=conversation_id, user_id=user_id)
    snapshot_cache.remember_members(conversation.id, [m.user_id for m in conversation.participants.all()])
    return conversation


# --- calls ---------------------------------------------------------------------------------------


def call_initiate(*, caller_id, conversation_id, callee_ids, call_type: str) -> WriteResult:
    """Start ringing ``callee_ids`` in a conversation. Everything is checked before anything is
    written; a conversation with a call already ringing or active answers CallAlreadyLive with
    that call's id (two members calling each other at once end up in one call)."""
    caller = str(caller_id)
    callees = [str(c) for c in callee_ids]
    if not callees:
        raise InvalidCallRequest("Name at least one callee.", details={"callee_ids": ["This list may not be empty."]})
    if len(set(callees)) != len(callees):
        raise InvalidCallRequest("Callees must be distinct.", details={"callee_ids": ["Duplicate callee."]})
    if caller in callees:
        raise InvalidCallRequest("You cannot call yourself.", details={"callee_ids": ["The caller is not a callee."]})
    if 1 + len(callees) > settings.MAX_CALL_PARTICIPANTS:
        raise InvalidCallRequest(
            f"A call has at most {settings.MAX_CALL_PARTICIPANTS} participants.",
            details={"callee_ids": [f"At most {settings.MAX_CALL_PARTICIPANTS - 1} callees."]},
        )
    call_id = uuid.uuid4()
    now = timezone.now()

    def mutate(record, source):
        conversation = source.conversation_state(conversation_id)
        if conversation is None:
            raise ConversationNotFound()
        members = conversation.member_ids
        if caller not in members:
            raise NotAParticipant("You are not a member of this conversation.")
        outsiders = [c for c in callees if c not in members]
        if outsiders:
            raise NotAParticipant(
                "Every callee must be a member of the conversation.", details={"callee_ids": outsiders}
            )
        live = conversation.live_call_ids
        if live:
            raise CallAlreadyLive(details={"call_id": live[0]})
        call, participants = lifecycle.new_call(
            call_id=call_id,
            conversation_id=conversation_id,
            caller_id=caller,
            callee_ids=callees,
            call_type=call_type,
            at=now,
        )
        events_so_far = []
        timeline.record_changes(events_so_far, call, participants, before=None)
        return CallRecord(call, participants, events_so_far), lifecycle.Outcome(changed=True)

    result = routing.execute_call_write(operation="initiate", call_id=call_id, mutate=mutate, creates=True)
    _publish(result, EventType.INCOMING_CALL, actor_id=caller)
    return result


def call_join(*, call_id, user_id) -> WriteResult:
    """Accept (or rejoin). Idempotent for someone already in the call."""

    def mutate(record, source):
        record = require_participant(record, user_id)
        participant = lifecycle.participant_for(record.participants, user_id)
        joined = sum(1 for p in record.participants if p.state == CallParticipant.State.JOINED)
        if participant.state != CallParticipant.State.JOINED and joined >= settings.MAX_CALL_PARTICIPANTS:
            raise CallFull()
        return _with_timeline(
            record,
            lambda: lifecycle.accept(record.call, record.participants, user_id=user_id, at=timezone.now()),
            actor_id=user_id,
        )

    result = routing.execute_call_write(operation="join", call_id=call_id, mutate=mutate)
    if result.outcome.changed:
        _publish(result, EventType.CALL_ACCEPTED, actor_id=user_id)
    return result


def call_decline(*, call_id, user_id) -> WriteResult:
    def mutate(record, source):
        record = require_participant(record, user_id)
        return _with_timeline(
            record,
            lambda: lifecycle.decline(record.call, record.participants, user_id=user_id, at=timezone.now()),
            actor_id=user_id,
        )

    result = routing.execute_call_write(operation="decline", call_id=call_id, mutate=mutate)
    if result.outcome.changed:
        _publish(result, EventType.CALL_DECLINED, actor_id=user_id)
    return result


def call_leave(*, call_id, user_id) -> WriteResult:
    def mutate(record, source):
        record = require_participant(record, user_id)
        return _with_timeline(
            record,
            lambda: lifecycle.leave(record.call, record.participants, user_id=user_id, at=timezone.now()),
            actor_id=user_id,
            departures=[user_id],
        )

    result = routing.execute_call_write(operation="leave", call_id=call_id, mutate=mutate)
    if result.outcome.changed:
        _publish(result, EventType.PARTICIPANT_LEFT, actor_id=user_id)
    return result


def call_end(*, call_id, user_id, reason: str = "") -> WriteResult:
    """Any participant ends the call for everyone; ending an ended call changes nothing."""

    def mutate(record, source):
        record = require_participant(record, user_id)
        return _with_timeline(
            record,
            lambda: lifecycle.end(record.call, record.participants, user_id=user_id, at=timezone.now(), reason=reason),
            actor_id=user_id,
        )

    result = routing.execute_call_write(operation="end", call_id=call_id, mutate=mutate)
    if result.outcome.changed:
        _publish(result, None, actor_id=user_id)
    return result


def call_set_media(*, call_id, user_id, is_muted: bool | None = None, is_video_on: bool | None = None) -> WriteResult:
    """Record a participant muting or unmuting, so history and the admin show it."""

    def mutate(record, source):
        record = require_participant(record, user_id)
        if lifecycle.is_terminal(record.call.status):
            raise lifecycle.InvalidTransition("The call has already ended.", details={"status": record.call.status})
        participant = lifecycle.participant_for(record.participants, user_id)
        changed = False
        now = timezone.now()
        if is_muted is not None and participant.is_muted != is_muted:
            participant.is_muted, changed = is_muted, True
            kind = timeline.Kind.AUDIO_MUTED if is_muted else timeline.Kind.AUDIO_UNMUTED
            timeline.append(record.timeline, call_id=record.call.id, kind=kind, at=now, actor_id=user_id)
        if is_video_on is not None and participant.is_video_on != is_video_on:
            participant.is_video_on, changed = is_video_on, True
            kind = timeline.Kind.VIDEO_ON if is_video_on else timeline.Kind.VIDEO_OFF
            timeline.append(record.timeline, call_id=record.call.id, kind=kind, at=now, actor_id=user_id)
        if changed:
            record.call.updated_at = now
        return record, lifecycle.Outcome(changed=changed)

    result = routing.execute_call_write(operation="media", call_id=call_id, mutate=mutate)
    if result.outcome.changed:
        _publish(result, EventType.MEDIA_CHANGED, actor_id=user_id)
    return result


def call_expire(*, call_id, now: datetime | None = None) -> WriteResult | None:
    """The ringing timeout for one call, per callee: whoever still rings at the deadline has
    missed it (whatever the call's status), and the call ends if it can no longer go on.
    None when nothing was due."""
    now = now or timezone.now()

    def mutate(record, source):
        if record is None:
            raise CallNotFound()
        deadline = call_ring_deadline(record.call)
        return _with_timeline(
            record, lambda: lifecycle.ring_timeout(record.call, record.participants, deadline=deadline, now=now)
        )

    result = routing.execute_call_write(operation="expire", call_id=call_id, mutate=mutate)
    if not result.outcome.changed:
        return None
    _publish(result, EventType.CALL_MISSED, actor_id=None)
    return result


def call_expire_if_overdue(record: CallRecord, *, deferred: bool) -> tuple[CallRecord, bool]:
    """The sweep's safety net for readers: callees ringing past the timeout are expired now.

    Returns the record as it stands afterwards and whether it came from the journal."""
    if not _ringing_overdue(record, timezone.now()):
        return record, deferred
    result = call_expire(call_id=record.call.id)
    return (result.record, result.deferred) if result is not None else (record, deferred)


def _ringing_overdue(record: CallRecord, now: datetime) -> bool:
    if record.call.status not in lifecycle.LIVE_STATUSES:
        return False
    if not any(p.state == CallParticipant.State.RINGING for p in record.participants):
        return False
    return call_ring_deadline(record.call) <= now


def call_ring_deadline(call: Call) -> datetime:
    """When the callees of ``call`` stop ringing: the one place that applies CALL_RING_TIMEOUT."""
    return lifecycle.ring_deadline(call, settings.CALL_RING_TIMEOUT)


def call_expire_due(*, now: datetime | None = None) -> int:
    """Expire the ringing of every callee who has rung longer than CALL_RING_TIMEOUT, in calls
    still ringing and in answered ones; how many calls changed."""
    now = now or timezone.now()
    cutoff = now - (call_ring_deadline(Call(started_at=now)) - now)  # started by then: rung out
    if availability.is_limited():
        due = [
            payload["call"]["id"]
            for status in lifecycle.LIVE_STATUSES
            for payload in get_spool().latest_with_status(status)
            if _ringing_overdue(CallRecord(*decode_call(payload)), now)
        ]
    else:
        due = list(
            CallParticipant.objects.filter(
                state=CallParticipant.State.RINGING,
                call__status__in=lifecycle.LIVE_STATUSES,
                call__started_at__lte=cutoff,
            )
            .order_by("call__started_at")
            .values_list("call_id", flat=True)
            .distinct()[:500]
        )
    return sum(1 for call_id in dict.fromkeys(due) if call_expire(call_id=call_id, now=now) is not None)


def call_record_connection(*, call_id, user_id, kind: str, at: datetime | float | None = None) -> WriteResult | None:
    """Add a participant's signaling connection to the call's timeline: ``connected``,
    ``reconnecting`` (their last socket dropped) or ``resumed`` (back within the grace); ``at``
    is when (a datetime or epoch seconds; default now). The loss for good is recorded by
    ``call_connections_check``.

    Best effort, for signaling to call as it goes: None, never an error, when the call is over,
    the user is not in it, or it cannot be recorded now (logged)."""
    if kind not in timeline.CONNECTION_KINDS:
        raise ValueError(f"Not a connection event: {kind!r}")
    if isinstance(at, int | float):
        at = datetime.fromtimestamp(at, tz=UTC)
    at = at or timezone.now()

    def mutate(record, source):
        record = require_participant(record, user_id)
        if lifecycle.is_terminal(record.call.status):
            return record, lifecycle.Outcome(changed=False)
        added = timeline.append(record.timeline, call_id=record.call.id, kind=kind, at=at, actor_id=user_id)
        if added is not None:
            record.call.updated_at = timezone.now()
        return record, lifecycle.Outcome(changed=added is not None)

    try:
        result = routing.execute_call_write(operation="timeline", call_id=call_id, mutate=mutate)
    except (CallError, DatabaseError) as exc:
        logger.warning("Call %s: %s of user %s not on the timeline: %s", call_id, kind, user_id, exc)
        return None
    return result if result.outcome.changed else None


# --- presence: the record follows the wire -------------------------------------------------------


def _lost_participants(record: CallRecord, presence, now: datetime) -> list[tuple[str, datetime]]:
    """(user id, dropped at) of the joined participants of an active call who are gone for good:
    no live socket anywhere, nothing held for a resume, and last seen alive longer ago than
    CALL_RECONNECT_GRACE. A participant never seen dropped when they joined; an answered call
    nobody ever connected to is given CALL_CONNECT_TIMEOUT from its answer instead."""
    call = record.call
    if call.status != Status.ACTIVE or call.answered_at is None:
        return []
    joined = [p for p in record.participants if p.state == CallParticipant.State.JOINED]
    if not presence.anyone_seen:
        if now - call.answered_at < timedelta(seconds=settings.CALL_CONNECT_TIMEOUT):
            return []
        return [(str(p.user_id), call.answered_at) for p in joined]
    grace = timedelta(seconds=settings.CALL_RECONNECT_GRACE)
    lost = []
    for participant in joined:
        seen = presence.of(participant.user_id)
        if seen.connected or seen.holders:
            continue
        candidates = [participant.joined_at, call.answered_at]
        if seen.last_seen is not None:
            candidates.append(datetime.fromtimestamp(seen.last_seen, tz=UTC))
        dropped_at = max(t for t in candidates if t is not None)
        if now - dropped_at >= grace:
            lost.append((str(participant.user_id), dropped_at))
    return sorted(lost, key=lambda item: item[1])


def call_connections_check(*, call_id, now: datetime | None = None) -> WriteResult | None:
    """Apply what presence says to one active call: participants gone past the grace leave with
    ``connection_lost`` as of when they were last seen, and the call ends (``connection_lost``)
    when it can no longer go on. Nothing is decided while presence cannot be read."""
    now = now or timezone.now()
    try:
        seen = presence.presence_of_calls([call_id])[str(call_id)]
    except presence.PresenceUnavailable:
        return None
    record, _ = routing.read_call(call_id)
    if record is None or not _lost_participants(record, seen, now):
        return None
    lost_users: list[str] = []

    def mutate(record, source):
        if record is None:
            raise CallNotFound()
        outcome = lifecycle.Outcome(changed=False)
        lost_users.clear()
        before = timeline.before(record.call, record.participants)
        for user_id, dropped_at in _lost_participants(record, seen, now):
            if lifecycle.is_terminal(record.call.status):
                break
            step = lifecycle.connection_lost(
                record.call, record.participants, user_id=user_id, dropped_at=dropped_at, now=now
            )
            if step.changed:
                lost_users.append(user_id)
                outcome.changed = True
                outcome.call_ended = outcome.call_ended or step.call_ended
                outcome.stopped_ringing += step.stopped_ringing
        if outcome.changed:
            timeline.record_changes(
                record.timeline,
                record.call,
                record.participants,
                before=before,
                actor_id=lost_users[-1],
                departures=lost_users,
            )
        return record, outcome

    result = routing.execute_call_write(operation="connection_lost", call_id=call_id, mutate=mutate)
    if not result.outcome.changed:
        return None
    for user_id in lost_users[:-1]:
        _publish(result, EventType.PARTICIPANT_LEFT, actor_id=user_id, with_end=False)
    _publish(result, EventType.PARTICIPANT_LEFT, actor_id=lost_users[-1])
    return result


def call_connections_sweep(*, now: datetime | None = None) -> int:
    """The backstop for calls whose sockets' instance died: check every active call against
    presence; how many calls changed. Presence is read in batches, calls are written only when
    someone is due."""
    now = now or timezone.now()
    if availability.is_limited():
        records = [CallRecord(*decode_call(p)) for p in get_spool().latest_with_status(Status.ACTIVE)]
    else:
        calls = list(Call.objects.filter(status=Status.ACTIVE).prefetch_related("participants")[:2000])
        records = [CallRecord(c, list(c.participants.all())) for c in calls]
    changed = 0
    for start in range(0, len(records), 500):
        batch = records[start : start + 500]
        try:
            seen = presence.presence_of_calls([r.call.id for r in batch])
        except presence.PresenceUnavailable:
            return changed
        for record in batch:
            if _lost_participants(record, seen[str(record.call.id)], now):
                changed += call_connections_check(call_id=record.call.id, now=now) is not None
    return changed


# --- helpers -------------------------------------------------------------------------------------


def _with_timeline(record: CallRecord, change, *, actor_id=None, departures=()):
    """Run ``change`` (a lifecycle step on ``record``) and add what it did to the record's
    timeline (``calls.timeline.record_changes``); the mutation's ``(record, outcome)``."""
    before = timeline.before(record.call, record.participants)
    outcome = change()
    if outcome.changed:
        timeline.record_changes(
            record.timeline,
            record.call,
            record.participants,
            before=before,
            actor_id=actor_id,
            departures=departures,
        )
    return record, outcome


TERMINAL_EVENTS = {
    Status.CANCELLED: EventType.CALL_CANCELLED,
    Status.MISSED: EventType.CALL_MISSED,
    Status.DECLINED: EventType.CALL_DECLINED,
}


def _publish(result: WriteResult, event_type: str | None, *, actor_id, with_end: bool = True) -> None:
    """The event for what happened, then, when the call is over, call_ended."""
    call, participants = result.record.call, result.record.participants
    payload = call_to_dict(call, participants)
    recipients = tuple(str(p.user_id) for p in participants)
    stopped = tuple(str(p.user_id) for p in result.outcome.stopped_ringing)
    actor = str(actor_id) if actor_id else None
    deadline = call_ring_deadline(call)

    def event(kind: str) -> CallEvent:
        return CallEvent(kind, payload, recipients, actor, call.end_reason, stopped, ring_deadline=deadline)

    published = []
    if result.outcome.call_ended and with_end:
        specific = TERMINAL_EVENTS.get(call.status)
        if specific and specific != event_type:
            published.append(event(specific))
    if event_type:
        published.insert(0, event(event_type))
    if result.outcome.call_ended and with_end:
        published.append(event(EventType.CALL_ENDED))
    events.publish_on_commit(*published)
