"""What the devices API reads and writes."""

from __future__ import annotations

from rest_framework import serializers

from push.models import Device


def is_well_formed_token(value: str) -> bool:
    """What a device token can be: printable, without spaces or slashes (FCM ids are)."""
    return value.isprintable() and not any(ch.isspace() for ch in value) and "/" not in value


class DeviceRegisterSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=Device._meta.get_field("token").max_length)
    platform = serializers.ChoiceField(choices=Device.Platform.choices)

    def validate_token(self, value: str) -> str:
        if not is_well_formed_token(value):
            raise serializers.ValidationError("A device token has no spaces, slashes or control characters.")
        return value


class DeviceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Device
        fields = ["id", "token", "platform", "is_active", "created_at", "last_seen_at"]
        read_only_fields = fields
