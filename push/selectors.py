"""Reads of registered devices."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import QuerySet

from push.models import Device


@dataclass(frozen=True)
class PushTarget:
    """One device to push to."""

    user_id: str
    token: str
    platform: str


def device_list(*, user_id) -> QuerySet[Device]:
    """The user's devices, most recently seen first (inactive ones too: the app may re-register)."""
    return Device.objects.filter(user_id=user_id).order_by("-last_seen_at", "id")


def device_targets_for_users(*, user_ids: Iterable[str]) -> list[PushTarget]:
    """Every active device of every given user."""
    user_ids = sorted({str(user_id) for user_id in user_ids})
    if not user_ids:
        return []
    rows = (
        Device.objects.filter(user_id__in=user_ids, is_active=True)
        .order_by("user_id", "created_at", "id")
        .values_list("user_id", "token", "platform")
    )
    return [PushTarget(user_id=str(user_id), token=token, platform=platform) for user_id, token, platform in rows]


def user_display_name(*, user_id: str, default: str) -> str:
    """A user's display name (else username) for a push; ``default`` if unknown or the database is away."""
    from django.contrib.auth import get_user_model
    from django.core.exceptions import ValidationError
    from django.db import DatabaseError

    try:
        row = get_user_model().objects.filter(pk=user_id).values_list("display_name", "username").first()
    except (DatabaseError, ValidationError, ValueError):
        return default
    if row is None:
        return default
    return row[0] or row[1] or default
