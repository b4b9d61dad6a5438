"""Call dicts and events shaped like ``calls.representation.call_to_dict`` and ``calls.events``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from calls.events import CallEvent


def call_dict(*, caller_id, callees, status="ringing", call_type="video", started_at=None, **fields) -> dict:
    """``callees`` maps user id to participant state (or is a list of ringing callee ids)."""
    if not isinstance(callees, dict):
        callees = {str(user_id): "ringing" for user_id in callees}
    started_at = started_at or datetime.now(UTC)
    participants = [{"user_id": str(caller_id), "role": "caller", "state": "joined"}]
    participants += [{"user_id": str(user_id), "role": "callee", "state": state} for user_id, state in callees.items()]
    return {
        "call_id": str(uuid.uuid4()),
        "conversation_id": str(uuid.uuid4()),
        "caller_id": str(caller_id),
        "call_type": call_type,
        "status": status,
        "end_reason": "",
        "started_at": started_at.isoformat().replace("+00:00", "Z"),
        "answered_at": None,
        "ended_at": None,
        "duration_seconds": 0,
        "participants": participants,
        **fields,
    }


def event(type, call, *, actor_id=None, reason="", stopped_ringing_ids=()) -> CallEvent:
    return CallEvent(
        type=type,
        call=call,
        recipient_ids=tuple(p["user_id"] for p in call["participants"]),
        actor_id=str(actor_id) if actor_id else None,
        reason=reason,
        stopped_ringing_ids=tuple(str(u) for u in stopped_ringing_ids),
    )
