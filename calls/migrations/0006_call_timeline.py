"""The call timeline (``CallTimelineEvent``): what happened to each call, in order.

Numbered 0006 and depending on 0004: another branch may bring its own 0005, and the merge then
makes this one depend on it. A new table only; existing calls have an empty timeline.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("calls", "0004_support_group"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="CallTimelineEvent",
            fields=[
                ("id", models.UUIDField(editable=False, primary_key=True, serialize=False)),
                ("seq", models.PositiveIntegerField(help_text="Position in the call's timeline, from 0.")),
                ("at", models.DateTimeField(help_text="When it happened.")),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("initiated", "Call started"),
                            ("rang", "Rang"),
                            ("accepted", "Answered"),
                            ("rejoined", "Rejoined"),
                            ("declined", "Declined"),
                            ("missed", "Missed"),
                            ("left", "Left"),
                            ("connected", "Connected"),
                            ("reconnecting", "Reconnecting"),
                            ("resumed", "Reconnected"),
                            ("connection_lost", "Connection lost"),
                            ("audio_muted", "Muted"),
                            ("audio_unmuted", "Unmuted"),
                            ("video_off", "Camera off"),
                            ("video_on", "Camera on"),
                            ("ended", "Call ended"),
                            ("truncated", "Further events not recorded"),
                        ],
                        max_length=20,
                    ),
                ),
                ("detail", models.CharField(blank=True, default="", max_length=20)),
                (
                    "actor",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "call",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="timeline",
                        to="calls.call",
                    ),
                ),
            ],
            options={
                "ordering": ["call", "seq"],
                "constraints": [models.UniqueConstraint(fields=("call", "seq"), name="call_timeline_event_unique")],
            },
        ),
    ]
