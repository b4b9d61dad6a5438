"""Call dicts made by ``calls.representation.call_to_dict`` itself (from unsaved rows, no
database), and events shaped like ``calls.events``."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.utils import timezone

from calls.events import CallEvent
from calls.models import Call, CallParticipant
from calls.representation import call_to_dict


def call_dict(*, caller_id, callees, status="ringing", call_type="video", started_at=None, **fields) -> dict:
    """``callees`` maps user id to participant state (or is a list of ringing callee ids);
    ``fields`` replace keys of the representation (``end_reason=...``)."""
    if not isinstance(callees, dict):
        callees = {str(user_id): "ringing" for user_id in callees}
    call = Call(
        conversation_id=uuid.uuid4(),
        caller_id=caller_id,
        call_type=call_type,
        status=status,
        started_at=started_at or timezone.now(),
    )
    participants = [CallParticipant(user_id=caller_id, role=CallParticipant.Role.CALLER, state="joined")]
    participants += [
        CallParticipant(user_id=user_id, role=CallParticipant.Role.CALLEE, state=state)
        for user_id, state in callees.items()
    ]
    return {**call_to_dict(call, participants), **fields}


def event(type, call, *, actor_id=None, reason="", stopped_ringing_ids=(), ring_deadline=None) -> CallEvent:
    return CallEvent(
        ring_deadline=ring_deadline or in_a_minute(),
        type=type,
        call=call,
        recipient_ids=tuple(p["user_id"] for p in call["participants"]),
        actor_id=str(actor_id) if actor_id else None,
        reason=reason,
        stopped_ringing_ids=tuple(str(u) for u in stopped_ringing_ids),
    )


def in_a_minute():
    """A ring deadline for pushes built directly (the service gives ``CallEvent.ring_deadline``)."""
    return timezone.now() + timedelta(seconds=60)
