"""Server-side presence: which participants of a call have a live signaling socket, on any
instance, and when each was last seen alive. It is the truth of participation that the call
lifecycle follows (``calls.services.call_connections_check``), whatever the clients say.

One Redis hash per call (``REDIS_URL`` set; a dict in this process otherwise) with three kinds
of field, each written with a single atomic command, so two devices of one user connecting at
the same instant never overwrite each other:

- ``s|<user>|<channel>`` = the socket's liveness deadline (epoch seconds). Its instance renews
  every PRESENCE_TTL / 3 seconds; the sockets of an instance that died expire by themselves.
- ``h|<user>|<channel>`` = the end of the reconnect grace of a socket that dropped, whose
  instance holds the messages addressed to it until a resume or the grace ends.
- ``t|<user>`` = when the participant was last seen alive: the last renewal, or the moment
  their socket dropped.

Readers filter on the deadlines, so stale fields are harmless; the hash expires a day after its
last write.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings

KEY_TTL = 24 * 3600
SOCKET, HOLD, SEEN = "s", "h", "t"


class PresenceUnavailable(Exception):
    """Presence could not be read or written (Redis away): decide nothing from it."""


@dataclass
class UserPresence:
    live_sockets: int = 0
    holders: list = field(default_factory=list)  # channels holding messages for a resume, newest first
    last_seen: float | None = None

    @property
    def connected(self) -> bool:
        return self.live_sockets > 0


@dataclass
class CallPresence:
    users: dict[str, UserPresence] = field(default_factory=dict)

    def of(self, user_id) -> UserPresence:
        return self.users.get(str(user_id)) or UserPresence()

    @property
    def anyone_seen(self) -> bool:
        return any(u.last_seen is not None or u.connected for u in self.users.values())

    @classmethod
    def from_fields(cls, fields: dict[str, str], now: float) -> CallPresence:
        presence = cls()
        for name, raw in fields.items():
            kind, _, rest = name.partition("|")
            user_id, _, channel = rest.partition("|")
            try:
                value = float(raw)
            except (TypeError, ValueError):
                continue
            user = presence.users.setdefault(user_id, UserPresence())
            if kind == SOCKET and value > now:
                user.live_sockets += 1
            elif kind == HOLD and value > now:
                user.holders.append((value, channel))
            elif kind == SEEN:
                user.last_seen = value
        for user in presence.users.values():
            user.holders = [channel for _, channel in sorted(user.holders, reverse=True)]
        return presence


def _field(kind: str, user_id, channel: str = "") -> str:
    return f"{kind}|{user_id}|{channel}" if channel else f"{kind}|{user_id}"


def ttl() -> float:
    return float(settings.PRESENCE_TTL)


class MemoryPresence:
    """One process's presence (no Redis): sockets on other processes are not seen."""

    def __init__(self):
        self._calls: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def write(self, call_id, sets: dict[str, float], deletes: Iterable[str] = ()) -> None:
        with self._lock:
            fields = self._calls.setdefault(str(call_id), {})
            for name in deletes:
                fields.pop(name, None)
            fields.update({k: repr(v) for k, v in sets.items()})

    def read(self, call_ids: list[str]) -> list[dict[str, str]]:
        with self._lock:
            return [dict(self._calls.get(str(c), {})) for c in call_ids]

    def renew(self, renewals: list[tuple[str, str, float, str, float]]) -> None:
        with self._lock:
            for call_id, socket_field, deadline, seen_field, now in renewals:
                fields = self._calls.get(str(call_id), {})
                if socket_field in fields:
                    fields[socket_field], fields[seen_field] = repr(deadline), repr(now)


# Renew a socket's entry only if it is still there: a renewal that crosses the socket's drop must
# not bring it back (it would look connected for another PRESENCE_TTL).
_RENEW_IF_PRESENT = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
"""


class RedisPresence:
    def __init__(self, url: str, prefix: str):
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True)
        self._prefix = prefix
        self._errors = (redis.RedisError, OSError)
        self._renew_script = self._client.register_script(_RENEW_IF_PRESENT)

    def _key(self, call_id) -> str:
        return f"{self._prefix}:presence:{call_id}"

    def write(self, call_id, sets: dict[str, float], deletes: Iterable[str] = ()) -> None:
        try:
            key = self._key(call_id)
            pipe = self._client.pipeline(transaction=False)
            gone = list(deletes)
            if gone:
                pipe.hdel(key, *gone)
            if sets:
                pipe.hset(key, mapping={k: repr(v) for k, v in sets.items()})
            pipe.expire(key, KEY_TTL)
            pipe.execute()
        except self._errors as exc:
            raise PresenceUnavailable(str(exc)) from exc

    def renew(self, renewals: list[tuple[str, str, float, str, float]]) -> None:
        try:
            pipe = self._client.pipeline(transaction=False)
            for call_id, socket_field, deadline, seen_field, now in renewals:
                self._renew_script(
                    keys=[self._key(call_id)],
                    args=[socket_field, repr(deadline), seen_field, repr(now), KEY_TTL],
                    client=pipe,
                )
            pipe.execute()
        except self._errors as exc:
            raise PresenceUnavailable(str(exc)) from exc

    def read(self, call_ids: list[str]) -> list[dict[str, str]]:
        try:
            pipe = self._client.pipeline(transaction=False)
            for call_id in call_ids:
                pipe.hgetall(self._key(call_id))
            return pipe.execute()
        except self._errors as exc:
            raise PresenceUnavailable(str(exc)) from exc


_backend = None
_backend_lock = threading.Lock()


def backend():
    global _backend
    with _backend_lock:
        if _backend is None:
            if settings.REDIS_URL:
                _backend = RedisPresence(settings.REDIS_URL, settings.CHANNEL_LAYER_PREFIX)
            else:
                _backend = MemoryPresence()
        return _backend


def reset_for_tests() -> None:
    global _backend
    with _backend_lock:
        _backend = None


# --- what sockets report ---------------------------------------------------------------------------


def presence_socket_opened(*, call_id, user_id, channel_name: str, now: float | None = None) -> CallPresence:
    """Record a live socket, and return the call's presence as it was just before (so a caller can
    tell a resume, with its holders, from a first connect)."""
    now = time.time() if now is None else now
    before = presence_of_calls([call_id], now=now)[str(call_id)]
    backend().write(call_id, {_field(SOCKET, user_id, channel_name): now + ttl(), _field(SEEN, user_id): now})
    return before


def presence_sockets_renewed(sockets: Iterable[tuple[str, str, str]], *, now: float | None = None) -> None:
    """Renew the liveness deadline of this instance's sockets, ``(call_id, user_id, channel)`` each
    (an entry already gone, because its socket dropped meanwhile, stays gone)."""
    now = time.time() if now is None else now
    renewals = [
        (str(call_id), _field(SOCKET, user_id, channel), now + ttl(), _field(SEEN, user_id), now)
        for call_id, user_id, channel in sockets
    ]
    if renewals:
        backend().renew(renewals)


def presence_socket_dropped(*, call_id, user_id, channel_name: str, at: float, hold_until: float | None) -> None:
    """A socket went (closed, or found dead at ``at``); with ``hold_until`` its instance holds the
    participant's messages for a resume until then."""
    sets = {_field(SEEN, user_id): at}
    if hold_until is not None:
        sets[_field(HOLD, user_id, channel_name)] = hold_until
    backend().write(call_id, sets, deletes=[_field(SOCKET, user_id, channel_name)])


def presence_socket_closed_for_good(*, call_id, user_id, channel_name: str) -> None:
    """A socket the server closed (rights revoked, call over): no grace, nothing held."""
    backend().write(call_id, {}, deletes=[_field(SOCKET, user_id, channel_name), _field(HOLD, user_id, channel_name)])


def presence_hold_released(*, call_id, user_id, channel_name: str) -> None:
    backend().write(call_id, {}, deletes=[_field(HOLD, user_id, channel_name)])


# --- what the lifecycle reads ----------------------------------------------------------------------


def presence_of_calls(call_ids: Iterable, *, now: float | None = None) -> dict[str, CallPresence]:
    """Presence of each call (raises PresenceUnavailable)."""
    now = time.time() if now is None else now
    ids = [str(c) for c in call_ids]
    if not ids:
        return {}
    return {c: CallPresence.from_fields(f or {}, now) for c, f in zip(ids, backend().read(ids), strict=True)}
