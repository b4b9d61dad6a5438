"""Call reads: one call, a user's history (cursor-paginated), analytics, conversations."""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from datetime import datetime

from django.core import signing
from django.core.exceptions import ValidationError
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
    return call_access(call_id=call_id, user_id=user_id)


# --- history -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryPage:
    calls: list[dict]
    next_cursor: str | None


_CURSOR_SIGNER = signing.Signer(salt="calls.selectors.history-cursor")


def encode_cursor(started_at: datetime, call_id) -> str:
    """An opaque position in a history, signed (``SECRET_KEY``) so that only cursors this
    service issued are ever parsed."""
    raw = f"{started_at.isoformat()}|{call_id}".encode()
    return _CURSOR_SIGNER.sign(base64.urlsafe_b64encode(raw).decode().rstrip("="))


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor of ``encode_cursor`` names. Any other string (tampered, re-encoded,
    unsigned, or of an older version) is ``InvalidCallRequest``, whatever the engine."""
    try:
        payload = _CURSOR_SIGNER.unsign(cursor)
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
        started, call_id = raw.split("|", 1)
        when = datetime.fromisoformat(started)
        if when.utcoffset() is None:
            raise ValueError
        return when, str(Call._meta.pk.to_python(call_id))
    except (
        signing.BadSignature,
        ValueError,
        OverflowError,
        binascii.Error,
        UnicodeDecodeError,
        ValidationError,
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


def _percentile(durations, fraction: float, count: int) -> int | None:
    """Nearest-rank percentile, computed by the database (ORDER BY ... OFFSET), on every engine."""
    if count == 0:
        return None
    offset = max(math.ceil(fraction * count) - 1, 0)
    return durations.order_by("duration_seconds").values_list("duration_seconds", flat=True)[offset]


def analytics_calls(*, user_id=None, since: datetime | None = None, until: datetime | None = None):
    """The calls analytics aggregate over. A user's are found through the participant history
    index (user, call_started_at), so the cost follows the user's calls, not the table."""
    if user_id is None:
        calls = Call.objects.all()
        if since:
            calls = calls.filter(started_at__gte=since)
        if until:
            calls = calls.filter(started_at__lt=until)
        return calls
    mine = CallParticipant.objects.filter(user_id=user_id)
    if since:
        mine = mine.filter(call_started_at__gte=since)
    if until:
        mine = mine.filter(call_started_at__lt=until)
    return Call.objects.filter(pk__in=mine.values("call_id"))


def call_analytics(*, user_id=None, since: datetime | None = None, until: datetime | None = None) -> dict:
    """Aggregates over the user's calls (or every call when ``user_id`` is None)."""

    def read():
        calls = analytics_calls(user_id=user_id, since=since, until=until)
        totals = calls.aggregate(
            total=Count("id"),
            answered=Count("id", filter=Q(answered_at__isnull=False)),
            missed=Count("id", filter=Q(status=Call.Status.MISSED)),
            avg_duration=Avg("duration_seconds", filter=Q(answered_at__isnull=False)),
            total_talk=Sum("duration_seconds"),
        )
        by_status = dict(calls.order_by().values_list("status").annotate(n=Count("id")))
        by_type = dict(calls.order_by().values_list("call_type").annotate(n=Count("id")))
        answered_calls = calls.filter(answered_at__isnull=False)
        total, answered = totals["total"], totals["answered"]
        return {
            "total": total,
            "by_status": {s: by_status.get(s, 0) for s in Call.Status.values},
            "by_type": {t: by_type.get(t, 0) for t in Call.Type.values},
            "answered": answered,
            "missed": totals["missed"],
            "answer_rate": round(answered / total, 4) if total else 0.0,
            "avg_duration_seconds": round(float(totals["avg_duration"]), 2)
            if totals["avg_duration"] is not None
            else 0.0,
            "total_talk_seconds": totals["total_talk"] or 0,
            "p50_duration_seconds": _percentile(answered_calls, 0.50, answered) or 0,
            "p95_duration_seconds": _percentile(answered_calls, 0.95, answered) or 0,
        }

    return database_only_read(read)


# --- conversations -------------------------------------------------------------------------------


def conversation_list(*, user_id):
    def read():
        return list(
            Conversation.objects.filter(participants__user_id=user_id)
            .prefetch_related(Prefetch("participants", queryset=ConversationParticipant.objects.select_related("user")))
            .order_by("-created_at")
        )

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
