"""How a call and a conversation look on the wire (REST responses, socket and push events)."""

from __future__ import annotations

from calls.models import Call, CallParticipant, CallTimelineEvent, Conversation
from core.timefmt import iso_z


def _iso(value):
    return iso_z(value) if value else None


def participant_to_dict(participant: CallParticipant) -> dict:
    return {
        "user_id": str(participant.user_id),
        "role": participant.role,
        "state": participant.state,
        "joined_at": _iso(participant.joined_at),
        "left_at": _iso(participant.left_at),
        "leave_reason": participant.leave_reason,
        "is_muted": participant.is_muted,
        "is_video_on": participant.is_video_on,
    }


def timeline_event_to_dict(event: CallTimelineEvent) -> dict:
    return {
        "seq": event.seq,
        "at": _iso(event.at),
        "kind": event.kind,
        "actor_id": str(event.actor_id) if event.actor_id else None,
        "detail": event.detail,
    }


def call_to_dict(call: Call, participants: list[CallParticipant], timeline=None) -> dict:
    """The call as clients see it; with ``timeline`` (its events) for the one-call answer only:
    lists and socket events leave it out."""
    ordered = sorted(participants, key=lambda p: (p.role != CallParticipant.Role.CALLER, str(p.user_id)))
    data = {
        "call_id": str(call.id),
        "conversation_id": str(call.conversation_id),
        "caller_id": str(call.caller_id),
        "call_type": call.call_type,
        "status": call.status,
        "end_reason": call.end_reason,
        "started_at": _iso(call.started_at),
        "answered_at": _iso(call.answered_at),
        "ended_at": _iso(call.ended_at),
        "duration_seconds": call.duration_seconds,
        "duration": call.duration_seconds,  # the old service's key, for clients that read it
        "participants": [participant_to_dict(p) for p in ordered],
    }
    if timeline is not None:
        data["timeline"] = [timeline_event_to_dict(e) for e in sorted(timeline, key=lambda e: e.seq)]
    return data


def conversation_to_dict(conversation: Conversation, members) -> dict:
    return {
        "conversation_id": str(conversation.id),
        "type": conversation.type,
        "title": conversation.title,
        "created_by": str(conversation.created_by_id),
        "created_at": _iso(conversation.created_at),
        "members": [
            {
                "user_id": str(m.user_id),
                "username": m.user.username,
                "display_name": m.user.display_name,
                "role": m.role,
                "joined_at": _iso(m.joined_at),
            }
            for m in sorted(members, key=lambda m: (m.joined_at, str(m.user_id)))
        ],
    }
