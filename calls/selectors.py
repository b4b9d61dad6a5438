"""Call reads: one call, a user's history (cursor-paginated), analytics, conversations."""

from __future__ import annotations

import base64
import binascii
import math
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.core import signing
from django.db.models import Avg, Count, Prefetch, Q, Sum

from calls.access import call_access
from calls.exceptions import ConversationNotFound, InvalidCallRequest
from calls.models import Call, CallParticipant, Conversation, ConversationParticipant
from calls.persistence.database_only import database_only_read
from calls.persistence.sources import CallRecord
from calls.representation import call_to_dict


def call_get_for_user(*, call_id, user_id) -> tuple[CallRecord, bool]:
    """The call and whether it came from the journal. Strangers get CallNotFound
    (``calls.access``). Whoever shows the call expires an overdue ringing first
    (``services.call_expire_if_overdue``): a selector never writes."""
    return call_access(call_id=call_id, user_id=user_id, with_timeline=True)


# --- history -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryPage:
    calls: list[dict]
    next_cursor: str | None


# One signer per list, so that a cursor of one list is never taken as a position in another.
HISTORY = "history"
CONVERSATIONS = "conversations"
_CURSOR_SIGNERS = {
    HISTORY: signing.Signer(salt="calls.selectors.history-cursor"),
    CONVERSATIONS: signing.Signer(salt="calls.selectors.conversations-cursor"),
}


def encode_cursor(when: datetime, row_id, *, kind: str = HISTORY) -> str:
    """An opaque position (a time and a UUID) in a list, newest first, signed (``SECRET_KEY``)
    so that only cursors this service issued are ever parsed."""
    raw = f"{when.isoformat()}|{row_id}".encode()
    return _CURSOR_SIGNERS[kind].sign(base64.urlsafe_b64encode(raw).decode().rstrip("="))


def decode_cursor(cursor: str, *, kind: str = HISTORY) -> tuple[datetime, str]:
    """The position a cursor of ``encode_cursor`` names. Any other string (tampered, re-encoded,
    unsigned, of an older version or of another list) is ``InvalidCallRequest``, whatever the engine."""
    try:
        payload = _CURSOR_SIGNERS[kind].unsign(cursor)
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
        when, row_id = raw.split("|", 1)
        moment = datetime.fromisoformat(when)
        if moment.utcoffset() is None:
            raise ValueError
        return moment, str(uuid.UUID(row_id))
    except (
        signing.BadSignature,
        ValueError,
        OverflowError,
        binascii.Error,
        UnicodeDecodeError,
    ) as exc:
        raise InvalidCallRequest("The cursor is not valid.", details={"cursor": ["Invalid cursor."]}) from exc


def call_history(
    *,
    user_id,
    limit: int = 20,
    cursor: str | None = None,
    status: str | None = None,
    call_type: str | None = None,
    conversation_id=None,
    direction: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> HistoryPage:
    """Calls where the user is caller or callee, each once, newest first.

    Walks the (user, call_started_at, call) index of participant rows, so a page costs the same
    whatever the size of the whole table."""

    def read():
        rows = CallParticipant.objects.filter(user_id=user_id)
        if direction == "incoming":
            rows = rows.filter(role=CallParticipant.Role.CALLEE)
        elif direction == "outgoing":
            rows = rows.filter(role=CallParticipant.Role.CALLER)
        if since:
            rows = rows.filter(call_started_at__gte=since)
        if until:
            rows = rows.filter(call_started_at__lt=until)
        if status:
            rows = rows.filter(call__status=status)
        if call_type:
            rows = rows.filter(call__call_type=call_type)
        if conversation_id:
            rows = rows.filter(call__conversation_id=conversation_id)
        if cursor:
            started, call_id = decode_cursor(cursor)
            rows = rows.filter(Q(call_started_at__lt=started) | Q(call_started_at=started, call_id__lt=call_id))
        page = list(
            rows.order_by("-call_started_at", "-call_id")
            .select_related("call")
            .prefetch_related(Prefetch("call__participants", queryset=CallParticipant.objects.order_by("role", "id")))[
                : limit + 1
            ]
        )
        more = len(page) > limit
        page = page[:limit]
        calls = [call_to_dict(row.call, list(row.call.participants.all())) for row in page]
        next_cursor = encode_cursor(page[-1].call_started_at, page[-1].call_id) if more and page else None
        return HistoryPage(calls, next_cursor)

    return database_only_read(read)


# --- analytics -----------------------------------------------------------------------------------


def _percentile(durations, field: str, fraction: float, count: int) -> int | None:
    """Nearest-rank percentile, computed by the database (ORDER BY ... OFFSET), on every engine."""
    if count == 0:
        return None
    offset = max(math.ceil(fraction * count) - 1, 0)
    return durations.order_by(field).values_list(field, flat=True)[offset]


def analytics_calls(*, user_id=None, since: datetime | None = None, until: datetime | None = None):
    """The rows analytics aggregate over, and the prefix that names a call's fields from them.

    A user's calls are their participant rows (one per call: unique per call and user), walked
    on the history index (user, call_started_at) and joined to each call by its primary key, so
    the cost follows the user's calls, never the size of the table. Every call when ``user_id``
    is None (``manage.py call_stats``)."""
    if user_id is None:
        calls = Call.objects.all()
        if since:
            calls = calls.filter(started_at__gte=since)
        if until:
            calls = calls.filter(started_at__lt=until)
        return calls, ""
    mine = CallParticipant.objects.filter(user_id=user_id)
    if since:
        mine = mine.filter(call_started_at__gte=since)
    if until:
        mine = mine.filter(call_started_at__lt=until)
    return mine, "call__"


def call_analytics(*, user_id=None, since: datetime | None = None, until: datetime | None = None) -> dict:
    """Aggregates over the user's calls (or every call when ``user_id`` is None): one query for
    the counts and sums, one for each percentile of the answered calls' durations."""

    def read():
        rows, call = analytics_calls(user_id=user_id, since=since, until=until)
        answered_only = Q(**{f"{call}answered_at__isnull": False})
        duration = f"{call}duration_seconds"
        counts = {f"status_{v}": Count("pk", filter=Q(**{f"{call}status": v})) for v in Call.Status.values}
        counts |= {f"type_{v}": Count("pk", filter=Q(**{f"{call}call_type": v})) for v in Call.Type.values}
        totals = rows.aggregate(
            total=Count("pk"),
            answered=Count("pk", filter=answered_only),
            avg_duration=Avg(duration, filter=answered_only),
            total_talk=Sum(duration),
            **counts,
        )
        answered_rows = rows.filter(answered_only)
        total, answered = totals["total"], totals["answered"]
        return {
            "total": total,
            "by_status": {s: totals[f"status_{s}"] for s in Call.Status.values},
            "by_type": {t: totals[f"type_{t}"] for t in Call.Type.values},
            "answered": answered,
            "missed": totals[f"status_{Call.Status.MISSED}"],
            "answer_rate": round(answered / total, 4) if total else 0.0,
            "avg_duration_seconds": round(float(totals["avg_duration"]), 2)
            if totals["avg_duration"] is not None
            else 0.0,
            "total_talk_seconds": totals["total_talk"] or 0,
            "p50_duration_seconds": _percentile(answered_rows, duration, 0.50, answered) or 0,
            "p95_duration_seconds": _percentile(answered_rows, duration, 0.95, answered) or 0,
        }

    return database_only_read(read)


# --- conversations -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConversationPage:
    conversations: list[Conversation]
    next_cursor: str | None


def conversation_list(*, user_id, limit: int = 50, cursor: str | None = None) -> ConversationPage:
    """The user's conversations, newest first, ``limit`` at a time, each with its members.

    Two queries a page whatever the page size or the number of conversations: the page (through
    the member's participant row), then the members of those conversations with their users."""

    def read():
        rows = Conversation.objects.filter(participants__user_id=user_id)
        if cursor:
            created, conversation_id = decode_cursor(cursor, kind=CONVERSATIONS)
            rows = rows.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=conversation_id))
        page = list(
            rows.order_by("-created_at", "-id").prefetch_related(
                Prefetch("participants", queryset=ConversationParticipant.objects.select_related("user"))
            )[: limit + 1]
        )
        more = len(page) > limit
        page = page[:limit]
        last = page[-1] if more and page else None
        return ConversationPage(page, encode_cursor(last.created_at, last.id, kind=CONVERSATIONS) if last else None)

    return database_only_read(read)


def conversation_get_for_user(*, conversation_id, user_id) -> Conversation:
    """Members only; everyone else gets ConversationNotFound."""

    def read():
        conversation = (
            Conversation.objects.filter(pk=conversation_id, participants__user_id=user_id)
            .prefetch_related(Prefetch("participants", queryset=ConversationParticipant.objects.select_related("user")))
            .first()
        )
        if conversation is None:
            raise ConversationNotFound()
        return conversation

    return database_only_read(read)


def conversation_members(conversation: Conversation) -> list[ConversationParticipant]:
    """Members with their user (prefetched by the selectors above; one query otherwise)."""
    if "participants" in getattr(conversation, "_prefetched_objects_cache", {}):
        return list(conversation.participants.all())
    return list(conversation.participants.select_related("user"))
