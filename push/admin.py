from django.contrib import admin

from push.models import Device


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    """Push targets, for support: which devices of a user would ring."""

    list_display = ("user", "platform", "is_active", "last_seen_at", "created_at")
    list_filter = ("platform", "is_active")
    search_fields = ("user__email", "user__username")
    list_select_related = ("user",)
    readonly_fields = ("id", "user", "token", "platform", "created_at", "last_seen_at")
    fields = ("id", "user", "platform", "token", "is_active", "created_at", "last_seen_at")

    def has_add_permission(self, request):
        return False  # apps register their devices through the API
