"""Which participants have a signaling socket open in a call, across every process.

Kept in the Django cache (Redis when REDIS_URL is set, so every instance sees the same; per
process otherwise, like the in-memory channel layer). One key per call and participant, written
only by that participant's sockets, holds ``{channel name: expiry}``; a socket refreshes its
entry while it lives, so the entries of a process that died vanish within PRESENCE_TTL.
Presence only feeds the ``participants`` message, so it is best effort: a cache failure is
logged and the socket goes on.
"""

from __future__ import annotations

import logging
import time

from django.core.cache import cache

logger = logging.getLogger(__name__)

PRESENCE_TTL = 90  # seconds an entry lives without a refresh
PRESENCE_REFRESH = 30  # how often a live socket refreshes its entry


def _key(call_id, user_id) -> str:
    return f"signaling:presence:{call_id}:{user_id}"


def _live(entries: dict | None, now: float) -> dict:
    return {channel: expiry for channel, expiry in (entries or {}).items() if expiry > now}


async def presence_enter(*, call_id, user_id, channel_name: str) -> None:
    """Record (or refresh) this socket as connected."""
    try:
        key, now = _key(call_id, user_id), time.time()
        entries = _live(await cache.aget(key), now)
        entries[channel_name] = now + PRESENCE_TTL
        await cache.aset(key, entries, PRESENCE_TTL)
    except Exception as exc:
        logger.warning("Signaling presence not recorded for call %s: %s", call_id, type(exc).__name__)


async def presence_leave(*, call_id, user_id, channel_name: str) -> None:
    try:
        key, now = _key(call_id, user_id), time.time()
        entries = _live(await cache.aget(key), now)
        entries.pop(channel_name, None)
        if entries:
            await cache.aset(key, entries, PRESENCE_TTL)
        else:
            await cache.adelete(key)
    except Exception as exc:
        logger.warning("Signaling presence not cleared for call %s: %s", call_id, type(exc).__name__)


async def presence_connected(*, call_id, user_ids) -> list[str]:
    """Those of ``user_ids`` with at least one live socket in the call."""
    user_ids = [str(u) for u in user_ids]
    try:
        found = await cache.aget_many([_key(call_id, u) for u in user_ids])
    except Exception as exc:
        logger.warning("Signaling presence unreadable for call %s: %s", call_id, type(exc).__name__)
        return []
    now = time.time()
    return [u for u in user_ids if _live(found.get(_key(call_id, u)), now)]
