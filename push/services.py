"""Writes to registered devices."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.utils import timezone

from core.transactions import run_in_transaction
from push.exceptions import DeviceNotFound
from push.models import Device

logger = logging.getLogger(__name__)


def device_register(*, user_id, token: str, platform: str) -> tuple[Device, bool]:
    """Register ``token`` for the user, or refresh it; returns ``(device, created)``.

    One token, one user: a token registered by someone else moves to this user (the phone
    changed hands or accounts). Registering revives a token that FCM had reported dead.
    """
    return run_in_transaction(lambda: _device_register(user_id=user_id, token=token, platform=platform))


def _device_register(*, user_id, token: str, platform: str) -> tuple[Device, bool]:
    now = timezone.now()
    device, created = Device.objects.select_for_update().get_or_create(
        token=token, defaults={"user_id": user_id, "platform": platform, "last_seen_at": now}
    )
    if not created:
        if str(device.user_id) != str(user_id):
            logger.info("Push device %s moved from user %s to user %s", device.id, device.user_id, user_id)
        device.user_id = user_id
        device.platform = platform
        device.is_active = True
        device.last_seen_at = now
        device.save(update_fields=["user", "platform", "is_active", "last_seen_at"])
    return device, created


def device_delete(*, user_id, token: str) -> None:
    """Remove one of the user's devices; ``DeviceNotFound`` when the token is not theirs."""
    deleted, _ = Device.objects.filter(user_id=user_id, token=token).delete()
    if not deleted:
        raise DeviceNotFound()


def device_deactivate(*, tokens: Iterable[str]) -> int:
    """Stop pushing to tokens FCM reported unregistered or invalid; returns how many changed."""
    tokens = list(tokens)
    if not tokens:
        return 0
    return Device.objects.filter(token__in=tokens, is_active=True).update(is_active=False)
