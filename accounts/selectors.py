"""Reads of accounts."""

from __future__ import annotations

import uuid

from accounts.exceptions import AccountUnavailable
from accounts.models import User


def user_find(*, query: str) -> User | None:
    """The active user whose email or username is exactly ``query`` (case-insensitive)."""
    query = query.strip()
    if not query:
        return None
    field = "email__iexact" if "@" in query else "username__iexact"
    return User.objects.filter(is_active=True, **{field: query}).first()


def user_get_active(*, user_id: uuid.UUID) -> User:
    """The active user ``user_id``; ``AccountUnavailable`` when deleted or disabled."""
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        raise AccountUnavailable()
    return user
