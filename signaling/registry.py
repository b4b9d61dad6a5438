"""This process's open sockets, and the one task that looks after all of them.

One task per process instead of one per socket (memory, and one Redis round trip for all):

- closes a socket at its access token's ``exp`` (4401), with no leeway, within a tick;
- once a second, closes the sockets whose token was revoked (logout: 4401) or whose account was
  disabled (4403), in one cache read for every socket of the process, so it happens on every
  instance within a second whichever instance took the logout;
- every PRESENCE_TTL / 3 seconds, renews the presence of every signaling socket in one write;
- hourly, refreshes channel-layer group memberships (they expire in Redis after a day).

It also keeps the per-user socket counts behind WS_MAX_*_PER_USER.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time

from asgiref.sync import sync_to_async
from django.conf import settings

from accounts import tokens
from calls import presence

logger = logging.getLogger(__name__)

TICK = 0.2  # seconds between checks of token expiry
SESSION_CHECK_INTERVAL = 1.0
GROUP_REFRESH = 3600


class SocketRegistry:
    def __init__(self):
        self.sockets: dict[str, object] = {}  # channel name -> consumer
        self.per_user: collections.Counter = collections.Counter()
        self.holders: set[asyncio.Task] = set()  # resume holders (signaling.resume), kept referenced
        self._task: asyncio.Task | None = None

    # --- per-user caps (counted from the handshake's authentication to the disconnect) ---------

    def take_user_slot(self, kind: str, user_id: str, limit: int) -> bool:
        if self.per_user[(kind, user_id)] >= limit:
            return False
        self.per_user[(kind, user_id)] += 1
        return True

    def release_user_slot(self, kind: str, user_id: str) -> None:
        key = (kind, user_id)
        self.per_user[key] -= 1
        if self.per_user[key] <= 0:
            del self.per_user[key]

    # --- sockets -------------------------------------------------------------------------------

    def register(self, consumer) -> None:
        self.sockets[consumer.channel_name] = consumer
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._run(), name="socket-registry")

    def unregister(self, consumer) -> None:
        self.sockets.pop(consumer.channel_name, None)

    def keep_holder(self, task: asyncio.Task) -> None:
        self.holders.add(task)
        task.add_done_callback(self.holders.discard)

    async def _run(self) -> None:
        next_session_check = next_renewal = time.monotonic()
        next_group_refresh = time.monotonic() + GROUP_REFRESH
        me = asyncio.current_task()
        while (self.sockets or self.holders) and self._task is me:
            try:
                now = time.monotonic()
                await self._close_expired_tokens()
                if now >= next_session_check:
                    next_session_check = now + SESSION_CHECK_INTERVAL
                    await self._close_refused_sessions()
                if now >= next_renewal:
                    next_renewal = now + settings.PRESENCE_TTL / 3
                    await self._renew_presence()
                if now >= next_group_refresh:
                    next_group_refresh = now + GROUP_REFRESH
                    for consumer in list(self.sockets.values()):
                        await consumer.refresh_groups()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("The socket registry's check failed; trying again")
            await asyncio.sleep(TICK)
        if self._task is me:
            self._task = None

    async def _close_expired_tokens(self) -> None:
        now = time.time()
        for consumer in list(self.sockets.values()):
            if consumer.token_expires_at is not None and consumer.token_expires_at <= now:
                consumer.token_expires_at = None
                await consumer.session_refused(
                    tokens.TokenExpired("The access token has expired; reconnect with a new one.")
                )

    async def _close_refused_sessions(self) -> None:
        sessions = {(c.jti, c.family, c.user_id) for c in self.sockets.values() if c.jti}
        if not sessions:
            return
        try:
            revoked, disabled = await sync_to_async(tokens.refused_sessions, thread_sensitive=False)(list(sessions))
        except Exception as exc:  # the cache is away: the handshake refuses new sockets meanwhile
            logger.warning("Could not check sessions of open sockets: %s", type(exc).__name__)
            return
        if not revoked and not disabled:
            return
        for consumer in list(self.sockets.values()):
            if consumer.user_id in disabled:
                await consumer.session_refused(tokens.TokenRevoked("This account is disabled."), disabled=True)
            elif consumer.jti in revoked:
                await consumer.session_refused(tokens.TokenRevoked("You logged out: this session was revoked."))

    async def _renew_presence(self) -> None:
        entries = [entry for c in self.sockets.values() if (entry := c.presence_entry()) is not None]
        if not entries:
            return
        try:
            await sync_to_async(presence.presence_sockets_renewed, thread_sensitive=False)(entries)
        except presence.PresenceUnavailable as exc:  # Redis away: the layer's 4503 closes the sockets
            logger.warning("Presence of %d socket(s) not renewed: %s", len(entries), exc)


registry = SocketRegistry()
