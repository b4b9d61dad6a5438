"""Call history for support staff: what happened, to whom, and when."""

import csv

from django.contrib import admin
from django.contrib.admin.utils import display_for_value
from django.db.models import Count, Prefetch
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from calls.models import Call, CallParticipant, CallTimelineEvent, Conversation, ConversationParticipant

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


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value):
    """A cell as OWASP recommends: text that a spreadsheet would take for a formula gets a
    leading single quote, so it is shown as text and never evaluated."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _iso(value) -> str:
    return value.isoformat() if value else ""


def call_csv_rows(calls):
    yield CSV_COLUMNS
    for call in calls:
        yield tuple(map(csv_safe, _call_csv_row(call)))


def _call_csv_row(call):
    return (
        str(call.id),
        str(call.conversation_id),
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


def person(user) -> str:
    """How the admin names someone: display name and email (the email alone when unnamed)."""
    return f"{user.display_name} <{user.email}>" if user.display_name else user.email


def person_short(user) -> str:
    """The display name, else the email: for list cells, where the full form is the tooltip."""
    return user.display_name or user.email


def _outcome(participant) -> str:
    """ "left (Connection lost)", "missed": how someone's part in a call ended (or stands)."""
    state = participant.get_state_display().lower()
    return f"{state} ({participant.get_leave_reason_display()})" if participant.leave_reason else state


def timeline_event_text(event: CallTimelineEvent) -> str:
    """What a timeline event says, in words: "Call ended: Connection lost", "Left: Hang-up"."""
    text = event.get_kind_display()
    if not event.detail:
        return text
    if event.kind == CallTimelineEvent.Kind.INITIATED:
        return f"{text} ({Call.Type(event.detail).label.lower()})" if event.detail in Call.Type.values else text
    if event.detail in Call.EndReason.values and event.kind != CallTimelineEvent.Kind.CONNECTION_LOST:
        return f"{text}: {Call.EndReason(event.detail).label}"
    return text


class ReadOnlyAdminMixin:
    """Call history is evidence: nobody adds or edits it in the admin, whatever their
    permissions. Deleting stays Django's own ``delete`` permission, which staff do not have
    unless it is given to them (superusers have every permission)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class CallParticipantInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = CallParticipant
    extra = 0
    can_delete = False
    fields = ("who", "role", "state", "joined_at", "left", "is_muted", "is_video_on")
    readonly_fields = fields
    ordering = ("-role", "joined_at")  # the caller first, then callees as they answered

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")

    @admin.display(description="Person")
    def who(self, participant):
        return person(participant.user)

    @admin.display(description="Left")
    def left(self, participant):
        # Someone who never joined never left: the time the lifecycle stamps on a callee whose
        # ringing stopped is when someone else ended the call, not anything she did.
        if participant.joined_at is None:
            return self.admin_site.empty_value_display
        return display_for_value(participant.left_at, self.admin_site.empty_value_display)


@admin.register(Call)
class CallAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # Duration and end reason come first after the id, so they stay in view beside the filters
    # on a 1280 px screen; the names wrap.
    list_display = (
        "short_id",
        "started_at",
        "duration",
        "end_reason",
        "status",
        "call_type",
        "caller_name",
        "callee_names",
    )
    list_filter = ("status", "call_type", "end_reason", ("started_at", admin.DateFieldListFilter))
    search_fields = ("id", "caller__email", "caller__username", "participants__user__email")
    date_hierarchy = "started_at"
    list_select_related = ("caller",)
    ordering = ("-started_at",)
    inlines = (CallParticipantInline,)
    actions = ("export_csv",)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "conversation",
                    "caller_person",
                    "call_type",
                    "status",
                    "end_reason",
                    "started_at",
                    "answered_at",
                    "ended_at",
                    "duration",
                    "recording_url",
                    "created_at",
                    "updated_at",
                )
            },
        ),
        ("What happened", {"fields": ("participant_names", "call_timeline")}),
    )
    readonly_fields = ("caller_person", "duration", "participant_names", "call_timeline")

    class Media:
        css = {"all": ("calls/admin.css",)}

    def get_queryset(self, request):
        # One query for every row's participants (and their users), whatever the page size.
        participants = CallParticipant.objects.select_related("user").order_by("role", "joined_at", "user__email")
        return super().get_queryset(request).prefetch_related(Prefetch("participants", queryset=participants))

    @admin.display(description="Call", ordering="id")
    def short_id(self, call):
        return call.short_id

    @admin.display(description="Caller", ordering="caller__display_name")
    def caller_name(self, call):
        return format_html('<span title="{}">{}</span>', call.caller.email, person_short(call.caller))

    @admin.display(description="Caller")
    def caller_person(self, call):
        return person(call.caller)

    @admin.display(description="Callees")
    def callee_names(self, call):
        callees = [p for p in call.participants.all() if p.role == CallParticipant.Role.CALLEE]
        return format_html_join(
            ", ",
            '<span title="{}">{}</span> ({})',
            ((p.user.email, person_short(p.user), p.get_state_display().lower()) for p in callees),
        )

    @admin.display(description="Duration", ordering="duration_seconds")
    def duration(self, call):
        return human_duration(call.duration_seconds)

    @admin.display(description="Participants")
    def participant_names(self, call):
        return format_html_join(
            "",
            "<div>{} ({}, {})</div>",
            (
                (person(p.user), p.get_role_display().lower(), _outcome(p))
                for p in sorted(call.participants.all(), key=lambda p: p.role != CallParticipant.Role.CALLER)
            ),
        )

    @admin.display(description="Timeline")
    def call_timeline(self, call):
        """Every recorded event in order: when (seconds, the admin's time zone), how long after the
        call began, who, and what."""
        events = CallTimelineEvent.objects.filter(call=call).select_related("actor").order_by("seq")
        rows = format_html_join(
            "",
            '<tr><td class="nowrap">{}</td><td class="nowrap">+{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    display_for_value(event.at, "-"),
                    human_duration(max(0, (event.at - call.started_at).total_seconds())),
                    person(event.actor) if event.actor else "the service",
                    timeline_event_text(event),
                )
                for event in events
            ),
        )
        if not rows:
            return "No events recorded (calls made before the timeline existed have none)."
        return format_html(
            '<table class="call-timeline"><thead><tr><th>Time</th><th>Since start</th><th>Who</th>'
            "<th>What</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.action(description="Export selected calls as CSV")
    def export_csv(self, request, queryset):
        calls = (
            queryset.select_related("caller")
            .prefetch_related(None)
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

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")


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
