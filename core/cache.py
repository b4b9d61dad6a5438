"""The Redis cache backend of ``CACHES`` (``secureconnect/settings.py``): Django's, reusing its
clients, with the one atomic counter the rate limits need (``sliding_window_hit``).

Django's ``RedisCacheClient.get_client`` builds a new ``redis.Redis`` for every command, and each
one fills a table of about 170 response callbacks: a quarter of a millisecond, several times a
request (token revocation, throttles, the snapshot cache). A ``redis.Redis`` is safe to share
between threads (each command takes a connection from the pool), so one per pool is kept.
"""

from __future__ import annotations

import uuid

from django.core.cache.backends import redis as django_redis

# A sliding-window log in a sorted set (member: a unique hit, score: its time): drop the hits
# that left the window, count the rest, and record this one if there is room. Atomic, so
# concurrent requests cannot all read the same count and all pass; one round trip.
SLIDING_WINDOW_HIT = """
local key, now, window, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
if count < limit then
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('PEXPIRE', key, math.ceil(window * 1000))
  return {1, count + 1, ''}
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return {0, count, oldest[2]}
"""


class RedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))  # the pools live in self._pools: their ids stay theirs
        if client is None:
            client = self._clients.setdefault(id(pool), self._client(connection_pool=pool))
        return client


class RedisCache(django_redis.RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisCacheClient
        self._scripts: dict = {}

    def sliding_window_hit(self, key: str, *, now: float, window: float, limit: int) -> tuple[bool, int, float | None]:
        """Count a hit on ``key`` if fewer than ``limit`` fell within the last ``window`` seconds:
        (allowed, hits in the window counting this one if allowed, the oldest hit's time when refused)."""
        client = self._cache.get_client(key, write=True)
        script = self._scripts.get(id(client))
        if script is None:  # redis-py's Script sends EVALSHA, and the source again only if Redis lost it
            script = self._scripts.setdefault(id(client), client.register_script(SLIDING_WINDOW_HIT))
        hit = f"{now!r}:{uuid.uuid4().hex[:12]}"
        allowed, count, oldest = script(keys=[self.make_and_validate_key(key)], args=[now, window, limit, hit])
        return bool(allowed), int(count), float(oldest) if oldest else None
