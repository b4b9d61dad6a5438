"""The snapshot cache: each call's latest state and each conversation's members, kept in the
Django cache (Redis when configured) so that calls begun before an outage can still be acted on
while the database is away. A convenience: a cache failure never fails a write."""

from __future__ import annotations

import logging

from django.core.cache import cache

from calls.persistence.snapshots import encode_call
from core.db_errors import describe

logger = logging.getLogger("calls.persistence")

CACHE_TTL_SECONDS = 24 * 3600


def _call_key(call_id) -> str:
    return f"calls:snapshot:{call_id}"


def _members_key(conversation_id) -> str:
    return f"calls:members:{conversation_id}"


def remember_call(record, *, members: tuple | None = None) -> None:
    """The call's state and, given ``(conversation_id, member_ids)``, its conversation's members,
    in one round trip."""
    values = {_call_key(record.call.id): encode_call(record.call, record.participants, record.timeline)}
    if members is not None:
        conversation_id, member_ids = members
        values[_members_key(conversation_id)] = sorted(str(m) for m in member_ids)
    try:
        if len(values) == 1:  # one SET ... EX, no pipeline
            cache.set(*values.popitem(), CACHE_TTL_SECONDS)
        else:  # a SET ... EX each, in one pipeline (core.cache.RedisCacheClient.set_many)
            cache.set_many(values, CACHE_TTL_SECONDS)
    except Exception as exc:  # the cache is a convenience; never fail a write for it
        logger.warning("Snapshot cache unavailable: %s", describe(exc))


def remember_members(conversation_id, member_ids) -> None:
    _cache_set(_members_key(conversation_id), sorted(str(m) for m in member_ids))


def _cache_set(key: str, value) -> None:
    try:
        cache.set(key, value, CACHE_TTL_SECONDS)
    except Exception as exc:  # the cache is a convenience; never fail a write for it
        logger.warning("Snapshot cache unavailable: %s", describe(exc))


def _cache_get(key: str):
    try:
        return cache.get(key)
    except Exception as exc:
        logger.warning("Snapshot cache unavailable: %s", describe(exc))
        return None


def cached_call(call_id) -> dict | None:
    """The call's last remembered state (a snapshot payload), or None."""
    return _cache_get(_call_key(call_id))


def cached_members(conversation_id) -> list[str] | None:
    """The conversation's remembered member ids, or None."""
    return _cache_get(_members_key(conversation_id))
