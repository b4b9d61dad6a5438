"""Input validation for the calls and conversations API, and the shapes it answers with
(the output serializers describe ``calls.representation``'s shapes for the OpenAPI schema,
built from the same declarations)."""

import copy

from rest_framework import serializers

from calls import representation
from calls.models import Call, Conversation
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


_described: dict[int, type[serializers.Serializer]] = {}  # id(shape) -> its serializer, one class per shape


def serializer_for(name: str, shape: representation.Shape) -> type[serializers.Serializer]:
    """A serializer that describes ``shape`` for the OpenAPI schema, built from the one
    declaration ``calls.representation`` renders with (it never renders anything itself). A
    nested shape must have been described first (one component per shape in the schema)."""
    fields = {}
    for field_name, field in shape.items():
        if field.many is not None:
            fields[field_name] = _described[id(field.many)](many=True, help_text=field.help_text or None)
        else:
            fields[field_name] = copy.deepcopy(field.schema)
    serializer = type(name, (serializers.Serializer,), fields)
    _described[id(shape)] = serializer
    return serializer


ParticipantOutput = serializer_for("ParticipantOutput", representation.PARTICIPANT)
TimelineEventOutput = serializer_for("TimelineEventOutput", representation.TIMELINE_EVENT)
MemberOutput = serializer_for("MemberOutput", representation.MEMBER)
CallOutput = serializer_for("CallOutput", representation.CALL)
CallDetailOutput = serializer_for("CallDetailOutput", representation.CALL_DETAIL)
ConversationOutput = serializer_for("ConversationOutput", representation.CONVERSATION)


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


class ConversationListOutput(serializers.Serializer):
    conversations = ConversationOutput(many=True)
    next_cursor = serializers.CharField(allow_null=True, help_text="The next page's cursor; null on the last page.")
