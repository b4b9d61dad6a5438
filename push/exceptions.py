"""The push domain's errors."""


class DeviceNotFound(Exception):
    """No device with that token belongs to the user (someone else's looks the same: absent)."""
