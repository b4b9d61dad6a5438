"""Reads of accounts."""

from __future__ import annotations

import uuid

from accounts.emails import canonical_email
from accounts.exceptions import AccountUnavailable
from accounts.models import User


def user_find(*, query: str) -> User | None:
    """The active user whose canonical email (``accounts.emails``) or username (ASCII,
    case-insensitive) is exactly ``query``."""
    query = query.strip()
    if not query:
        return None
    if "@" in query:
        return User.objects.filter(is_active=True, email=canonical_email(query)).first()
    return User.objects.filter(is_active=True, username__iexact=query).first()


def user_get_active(*, user_id: uuid.UUID) -> User:
    """The active user ``user_id``; ``AccountUnavailable`` when deleted or disabled."""
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        raise AccountUnavailable()
    return user
