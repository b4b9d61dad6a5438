"""Call history for support staff: what happened, to whom, and when."""

import csv

from django.contrib import admin
from django.db import models
from django.db.models import Count, Prefetch
from django.http import StreamingHttpResponse
from django.utils import timezone

from calls.models import Call, CallParticipant, Conversation, ConversationParticipant

CSV_COLUMNS = (
    "call_id",
    "conversation_id",
    "call_type",
    "status",
    "end_reason",
    "caller_email",
    "participants",
    "started_at",
    "answered_at",
    "ended_at",
    "duration_seconds",
)


def human_duration(seconds: int) -> str:
    """0:42, 12:05, 1:02:03."""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class _Echo:
    """A file-like object whose write returns the line, for streaming CSV."""

    def write(self, value):
        return value


def _iso(value) -> str:
    return value.isoformat() if value else ""


def call_csv_rows(calls):
    yield CSV_COLUMNS
    for call in calls:
        yield (
            call.id,
            call.conversation_id,
            call.call_type,
            call.status,
            call.end_reason,
            call.caller.email,
            "; ".join(f"{p.user.email} ({p.role}, {p.state})" for p in call.participants.all()),
            _iso(call.started_at),
            _iso(call.answered_at),
            _iso(call.ended_at),
            call.duration_seconds,
        )


class CallParticipantInline(admin.TabularInline):
    model = CallParticipant
    extra = 0
    can_delete = False
    fields = ("user", "role", "state", "joined_at", "left_at", "is_muted", "is_video_on")
    readonly_fields = fields
    list_select_related = ("user",)

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")


@admin.register(Call)
class CallAdmin(admin.ModelAdmin):
    list_display = (
        "short_id",
        "call_type",
        "status",
        "caller",
        "participant_count",
        "started_at",
        "duration",
        "end_reason",
    )
    list_filter = ("status", "call_type", "end_reason", ("started_at", admin.DateFieldListFilter))
    search_fields = ("id", "caller__email", "caller__username", "participants__user__email")
    date_hierarchy = "started_at"
    list_select_related = ("caller",)
    ordering = ("-started_at",)
    inlines = (CallParticipantInline,)
    actions = ("export_csv",)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    readonly_fields = (
        "id",
        "conversation",
        "caller",
        "started_at",
        "answered_at",
        "ended_at",
        "duration_seconds",
        "created_at",
        "updated_at",
    )
    fields = (
        "id",
        "conversation",
        "caller",
        "call_type",
        "status",
        "end_reason",
        "started_at",
        "answered_at",
        "ended_at",
        "duration_seconds",
        "recording_url",
        "created_at",
        "updated_at",
    )

    def has_add_permission(self, request):
        # Calls are created by clients through the API, never typed in by hand.
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(participant_total=Count("participants", distinct=True))

    @admin.display(description="Call", ordering="id")
    def short_id(self, call):
        return call.short_id

    @admin.display(description="Participants", ordering="participant_total")
    def participant_count(self, call):
        return call.participant_total

    @admin.display(description="Duration", ordering="duration_seconds")
    def duration(self, call):
        return human_duration(call.duration_seconds)

    @admin.action(description="Export selected calls as CSV")
    def export_csv(self, request, queryset):
        calls = (
            queryset.select_related("caller")
            .prefetch_related(Prefetch("participants", queryset=CallParticipant.objects.select_related("user")))
            .order_by("-started_at")
        )
        writer = csv.writer(_Echo())
        response = StreamingHttpResponse(
            (writer.writerow(row) for row in call_csv_rows(calls.iterator(chunk_size=500))),
            content_type="text/csv",
        )
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="calls-{stamp}.csv"'
        return response


class ConversationParticipantInline(admin.TabularInline):
    model = ConversationParticipant
    extra = 0
    autocomplete_fields = ("user",)
    readonly_fields = ("joined_at",)


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("__str__", "type", "created_by", "member_count", "created_at")
    list_filter = ("type",)
    search_fields = ("id", "title", "participants__user__email", "participants__user__username")
    list_select_related = ("created_by",)
    readonly_fields = ("id", "created_at", "updated_at")
    autocomplete_fields = ("created_by",)
    inlines = (ConversationParticipantInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_total=Count("participants", distinct=True))

    @admin.display(description="Members", ordering="member_total")
    def member_count(self, conversation):
        return conversation.member_total
