"""How a call and a conversation look on the wire (REST responses, socket and push events).

Each shape is declared once, as fields: a name, how the value is read, and how the OpenAPI schema
describes it. ``render`` turns an object into the dict clients get (a plain loop, no serializer on
the hot path: every write's answer and event goes through it), and ``calls.api.serializers``
builds the schema's serializers from the same declarations, so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rest_framework import serializers

from calls.models import Call, CallParticipant, CallTimelineEvent, Conversation, ConversationParticipant
from calls.timeline import MAX_EVENTS
from core.timefmt import iso_z


@dataclass(frozen=True)
class Field:
    read: Callable[[Any], Any]  # the value clients get, from the object rendered
    schema: serializers.Field | None = None  # how the OpenAPI schema describes it (never used to render)
    many: dict[str, Field] | None = None  # or: a list of this other shape
    help_text: str = ""


Shape = dict[str, Field]


def render(shape: Shape, obj) -> dict:
    return {name: field.read(obj) for name, field in shape.items()}


def _iso(value):
    return iso_z(value) if value else None


def _uuid(value):
    return str(value) if value else None


PARTICIPANT: Shape = {
    "user_id": Field(lambda p: str(p.user_id), serializers.UUIDField()),
    "role": Field(lambda p: p.role, serializers.ChoiceField(choices=CallParticipant.Role.choices)),
    "state": Field(lambda p: p.state, serializers.ChoiceField(choices=CallParticipant.State.choices)),
    "joined_at": Field(lambda p: _iso(p.joined_at), serializers.DateTimeField(allow_null=True)),
    "left_at": Field(lambda p: _iso(p.left_at), serializers.DateTimeField(allow_null=True)),
    "leave_reason": Field(
        lambda p: p.leave_reason, serializers.ChoiceField(choices=Call.EndReason.choices, allow_blank=True)
    ),
    "is_muted": Field(lambda p: p.is_muted, serializers.BooleanField()),
    "is_video_on": Field(lambda p: p.is_video_on, serializers.BooleanField()),
}

TIMELINE_EVENT: Shape = {
    "seq": Field(lambda e: e.seq, serializers.IntegerField(min_value=0, help_text="Position in the timeline, from 0.")),
    "at": Field(lambda e: _iso(e.at), serializers.DateTimeField(help_text="When it happened (UTC).")),
    "kind": Field(lambda e: e.kind, serializers.ChoiceField(choices=CallTimelineEvent.Kind.choices)),
    "actor_id": Field(
        lambda e: _uuid(e.actor_id),
        serializers.UUIDField(
            allow_null=True, help_text="Whose event it is; null for the service's own decision (the ringing timeout)."
        ),
    ),
    "detail": Field(
        lambda e: e.detail,
        serializers.CharField(
            allow_blank=True,
            help_text="The end reason for ended, the leave reason for left and connection_lost, the call type for "
            "initiated; blank otherwise.",
        ),
    ),
}


@dataclass(frozen=True)
class CallView:
    """What a call's shape is read from: the call, its participants caller first, its timeline."""

    call: Call
    participants: list[CallParticipant]
    timeline: list[CallTimelineEvent] | None = None


CALL: Shape = {
    "call_id": Field(lambda v: str(v.call.id), serializers.UUIDField()),
    "conversation_id": Field(lambda v: str(v.call.conversation_id), serializers.UUIDField()),
    "caller_id": Field(lambda v: str(v.call.caller_id), serializers.UUIDField()),
    "call_type": Field(lambda v: v.call.call_type, serializers.ChoiceField(choices=Call.Type.choices)),
    "status": Field(lambda v: v.call.status, serializers.ChoiceField(choices=Call.Status.choices)),
    "end_reason": Field(
        lambda v: v.call.end_reason, serializers.ChoiceField(choices=Call.EndReason.choices, allow_blank=True)
    ),
    "started_at": Field(lambda v: _iso(v.call.started_at), serializers.DateTimeField()),
    "answered_at": Field(lambda v: _iso(v.call.answered_at), serializers.DateTimeField(allow_null=True)),
    "ended_at": Field(lambda v: _iso(v.call.ended_at), serializers.DateTimeField(allow_null=True)),
    "duration_seconds": Field(lambda v: v.call.duration_seconds, serializers.IntegerField(min_value=0)),
    "duration": Field(
        lambda v: v.call.duration_seconds,
        serializers.IntegerField(min_value=0, help_text="The same as duration_seconds (the old service's key)."),
    ),
    "participants": Field(lambda v: [render(PARTICIPANT, p) for p in v.participants], many=PARTICIPANT),
}

# The one-call answer only: lists and socket events leave the timeline out.
CALL_DETAIL: Shape = {
    **CALL,
    "timeline": Field(
        lambda v: [render(TIMELINE_EVENT, e) for e in sorted(v.timeline or (), key=lambda e: e.seq)],
        many=TIMELINE_EVENT,
        help_text=f"What happened to the call, in order (by seq); at most {MAX_EVENTS} events, the last but one "
        "a truncated marker when more happened than that.",
    ),
}

MEMBER: Shape = {
    "user_id": Field(lambda m: str(m.user_id), serializers.UUIDField()),
    "username": Field(lambda m: m.user.username, serializers.CharField()),
    "display_name": Field(lambda m: m.user.display_name, serializers.CharField(allow_blank=True)),
    "role": Field(lambda m: m.role, serializers.ChoiceField(choices=ConversationParticipant.Role.choices)),
    "joined_at": Field(lambda m: _iso(m.joined_at), serializers.DateTimeField()),
}


@dataclass(frozen=True)
class ConversationView:
    conversation: Conversation
    members: list[ConversationParticipant]


CONVERSATION: Shape = {
    "conversation_id": Field(lambda v: str(v.conversation.id), serializers.UUIDField()),
    "type": Field(lambda v: v.conversation.type, serializers.ChoiceField(choices=Conversation.Type.choices)),
    "title": Field(lambda v: v.conversation.title, serializers.CharField(allow_blank=True)),
    "created_by": Field(lambda v: str(v.conversation.created_by_id), serializers.UUIDField()),
    "created_at": Field(lambda v: _iso(v.conversation.created_at), serializers.DateTimeField()),
    "members": Field(lambda v: [render(MEMBER, m) for m in v.members], many=MEMBER),
}


def participant_to_dict(participant: CallParticipant) -> dict:
    return render(PARTICIPANT, participant)


def timeline_event_to_dict(event: CallTimelineEvent) -> dict:
    return render(TIMELINE_EVENT, event)


def call_to_dict(call: Call, participants: list[CallParticipant], timeline=None) -> dict:
    """The call as clients see it; with ``timeline`` (its events) for the one-call answer only:
    lists and socket events leave it out."""
    ordered = sorted(participants, key=lambda p: (p.role != CallParticipant.Role.CALLER, str(p.user_id)))
    view = CallView(call, ordered, timeline)
    return render(CALL if timeline is None else CALL_DETAIL, view)


def conversation_to_dict(conversation: Conversation, members) -> dict:
    ordered = sorted(members, key=lambda m: (m.joined_at, str(m.user_id)))
    return render(CONVERSATION, ConversationView(conversation, ordered))
