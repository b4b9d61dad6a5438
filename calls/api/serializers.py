"""Input validation for the calls and conversations API, and the shapes it answers with
(the output serializers document ``calls.representation`` for the OpenAPI schema)."""

from rest_framework import serializers

from calls.models import Call, CallParticipant, CallTimelineEvent, Conversation, ConversationParticipant
from calls.timeline import MAX_EVENTS
from core.api.fields import PlainTextField

MAX_MEMBERS = 256


class ConversationCreateInput(serializers.Serializer):
    type = serializers.ChoiceField(choices=Conversation.Type.choices)
    title = PlainTextField(max_length=200, required=False, allow_blank=True, default="")
    member_ids = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=MAX_MEMBERS)


class CallInitiateInput(serializers.Serializer):
    call_type = serializers.ChoiceField(choices=Call.Type.choices)
    conversation_id = serializers.UUIDField()
    callee_ids = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=64)


class CallEndInput(serializers.Serializer):
    reason = serializers.ChoiceField(
        choices=[Call.EndReason.HANGUP, Call.EndReason.FAILED, Call.EndReason.ABANDONED, Call.EndReason.BUSY],
        required=False,
    )


class TimeWindowQuery(serializers.Serializer):
    """``since`` / ``until`` bounds shared by history and analytics."""

    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)

    def validate(self, attrs):
        if attrs.get("since") and attrs.get("until") and attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"until": ["until must be after since."]})
        return attrs


class CallHistoryQuery(TimeWindowQuery):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20)
    cursor = serializers.CharField(max_length=200, required=False)
    status = serializers.ChoiceField(choices=Call.Status.choices, required=False)
    call_type = serializers.ChoiceField(choices=Call.Type.choices, required=False)
    conversation_id = serializers.UUIDField(required=False)
    direction = serializers.ChoiceField(choices=["incoming", "outgoing"], required=False)


class AnalyticsQuery(TimeWindowQuery):
    pass


class ConversationListQuery(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=50)
    cursor = serializers.CharField(max_length=200, required=False)


# --- output shapes (documentation of calls.representation) --------------------------------------


class ParticipantOutput(serializers.Serializer):
    user_id = serializers.UUIDField()
    role = serializers.ChoiceField(choices=CallParticipant.Role.choices)
    state = serializers.ChoiceField(choices=CallParticipant.State.choices)
    joined_at = serializers.DateTimeField(allow_null=True)
    left_at = serializers.DateTimeField(allow_null=True)
    leave_reason = serializers.ChoiceField(choices=Call.EndReason.choices, allow_blank=True)
    is_muted = serializers.BooleanField()
    is_video_on = serializers.BooleanField()


class CallOutput(serializers.Serializer):
    call_id = serializers.UUIDField()
    conversation_id = serializers.UUIDField()
    caller_id = serializers.UUIDField()
    call_type = serializers.ChoiceField(choices=Call.Type.choices)
    status = serializers.ChoiceField(choices=Call.Status.choices)
    end_reason = serializers.ChoiceField(choices=Call.EndReason.choices, allow_blank=True)
    started_at = serializers.DateTimeField()
    answered_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.IntegerField(min_value=0)
    duration = serializers.IntegerField(min_value=0, help_text="The same as duration_seconds (the old service's key).")
    participants = ParticipantOutput(many=True)


class TimelineEventOutput(serializers.Serializer):
    seq = serializers.IntegerField(min_value=0, help_text="Position in the timeline, from 0.")
    at = serializers.DateTimeField(help_text="When it happened (UTC).")
    kind = serializers.ChoiceField(choices=CallTimelineEvent.Kind.choices)
    actor_id = serializers.UUIDField(
        allow_null=True, help_text="Whose event it is; null for the service's own decision (the ringing timeout)."
    )
    detail = serializers.CharField(
        allow_blank=True,
        help_text="The end reason for ended, the leave reason for left and connection_lost, the call type for "
        "initiated; blank otherwise.",
    )


class CallDetailOutput(CallOutput):
    timeline = TimelineEventOutput(
        many=True,
        help_text=f"What happened to the call, in order (by seq); at most {MAX_EVENTS} events, the last but one "
        "a truncated marker when more happened than that.",
    )


class CallHistoryOutput(serializers.Serializer):
    calls = CallOutput(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class CountsByStatus(serializers.Serializer):
    def get_fields(self):
        return {status: serializers.IntegerField(min_value=0) for status in Call.Status.values}


class CountsByType(serializers.Serializer):
    def get_fields(self):
        return {call_type: serializers.IntegerField(min_value=0) for call_type in Call.Type.values}


class AnalyticsOutput(serializers.Serializer):
    total = serializers.IntegerField(min_value=0)
    by_status = CountsByStatus()
    by_type = CountsByType()
    answered = serializers.IntegerField(min_value=0)
    missed = serializers.IntegerField(min_value=0)
    answer_rate = serializers.FloatField(min_value=0, max_value=1)
    avg_duration_seconds = serializers.FloatField(min_value=0)
    total_talk_seconds = serializers.IntegerField(min_value=0)
    p50_duration_seconds = serializers.IntegerField(min_value=0)
    p95_duration_seconds = serializers.IntegerField(min_value=0)


class IceServerOutput(serializers.Serializer):
    urls = serializers.ListField(child=serializers.CharField())
    username = serializers.CharField(required=False)
    credential = serializers.CharField(required=False)


class IceServersOutput(serializers.Serializer):
    ice_servers = IceServerOutput(many=True)
    ttl = serializers.IntegerField()


class MemberOutput(serializers.Serializer):
    user_id = serializers.UUIDField()
    username = serializers.CharField()
    display_name = serializers.CharField(allow_blank=True)
    role = serializers.ChoiceField(choices=ConversationParticipant.Role.choices)
    joined_at = serializers.DateTimeField()


class ConversationOutput(serializers.Serializer):
    conversation_id = serializers.UUIDField()
    type = serializers.ChoiceField(choices=Conversation.Type.choices)
    title = serializers.CharField(allow_blank=True)
    created_by = serializers.UUIDField()
    created_at = serializers.DateTimeField()
    members = MemberOutput(many=True)


class ConversationListOutput(serializers.Serializer):
    conversations = ConversationOutput(many=True)
    next_cursor = serializers.CharField(allow_null=True, help_text="The next page's cursor; null on the last page.")
