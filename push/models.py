import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Device(models.Model):
    """An app install that can receive pushes. A token belongs to one user at a time."""

    class Platform(models.TextChoices):
        ANDROID = "android", "Android"
        IOS = "ios", "iOS"
        WEB = "web", "Web"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="push_devices")
    # The identifier the app registers with FCM (sent as the message's ``fid``).
    token = models.CharField(max_length=512, unique=True)
    platform = models.CharField(max_length=10, choices=Platform.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(default=timezone.now)
    # False once FCM reports the token unregistered or invalid; registering it again revives it.
    is_active = models.BooleanField(default=True)

    class Meta:
        db_table = "accounts_device"  # created by accounts.0002 before push was an app of its own
        ordering = ["-last_seen_at"]
        indexes = [
            # "the active devices of these users", on every push.
            models.Index(fields=["user", "is_active"], name="device_user_active"),
        ]

    def __str__(self) -> str:
        return f"{self.get_platform_display()} device {self.token[:12]}… of {self.user_id}"
