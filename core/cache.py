"""The Redis cache backend of ``CACHES`` (``secureconnect/settings.py``): Django's, with its
connections kept across requests, the atomic sliding windows the rate limits need
(``sliding_window_hit``, ``window_add``, ``window_count``), and ``admit``: a request's refusal
marks and its rate limits in one round trip.

Two costs of Django's own backend under ASGI, each measured on the REST path
(docs/benchmarks.md, "Issue 17: the lean write path"):

- Django keeps cache backends per async context (``CacheHandler`` is a context-local), so every
  request builds a new backend, a new connection pool and a new Redis connection (with its
  HELLO, CLIENT SETINFO and SELECT): a sixth of the service's samples under load. Here every
  backend of one configuration shares one client, and so one pool, per process (Django's open
  PR #18459 is about the same).
- ``RedisCacheClient.get_client`` builds a new ``redis.Redis`` for every command, each filling a
  table of about 170 response callbacks. A ``redis.Redis`` is safe to share between threads
  (each command takes a connection from the pool), so one per pool is kept.
"""

from __future__ import annotations

import math
import threading
import uuid
from typing import NamedTuple

from django.core.cache.backends import redis as django_redis

# What a request is let through by, in one atomic round trip (``RedisCache.admit``). First the
# marks that refuse it (a revoked token, session or account): when one is there, nothing is
# counted. Then each rate limit, a sliding-window log in a sorted set (member: a unique hit,
# score: its time): drop the hits that left the window, count the rest, and record this one if
# there is room. Atomic, so concurrent requests cannot all read the same count and all pass.
# KEYS: ARGV[1] marks, then one sorted set per rate limit; ARGV: the number of marks, now, then
# (window seconds, limit, hit id) per rate limit. Returns {indexes of the marks found,
# {allowed, hits in the window, oldest hit when refused} per rate limit}.
ADMIT = """
local marks, now = tonumber(ARGV[1]), tonumber(ARGV[2])
local found = {}
for i = 1, marks do
  if redis.call('EXISTS', KEYS[i]) == 1 then found[#found + 1] = i end
end
if #found > 0 then return {found, {}} end
local windows = {}
for w = 1, #KEYS - marks do
  local key, at = KEYS[marks + w], 3 * w
  local window, limit = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count < limit then
    redis.call('ZADD', key, now, ARGV[at + 2])
    redis.call('PEXPIRE', key, math.ceil(window * 1000))
    windows[w] = {1, count + 1, ''}
  else
    windows[w] = {0, count, redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]}
  end
end
return {found, windows}
"""


class RateWindow(NamedTuple):
    """One rate limit a request counts against: at most ``limit`` hits on ``key`` within ``window`` seconds."""

    key: str
    window: float
    limit: int


class WindowHit(NamedTuple):
    """A rate limit's answer: whether this hit was let in (and recorded), the hits in the window
    (counting this one when let in), and the oldest hit's time when refused."""

    allowed: bool
    count: int
    oldest: float | None


class RedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._clients: dict[int, object] = {}  # pool id -> its redis.Redis (the pools live in self._pools)
        self._scripts: dict[int, object] = {}  # client id -> ADMIT registered on it

    def _get_connection_pool(self, write):
        with self._lock:  # shared by every thread of the process: one pool per server
            return super()._get_connection_pool(write)

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients.setdefault(id(pool), self._client(connection_pool=pool))
        return client

    def admit(self, marks: list[str], windows: list[RateWindow], *, now: float) -> tuple[set[str], list[WindowHit]]:
        client = self.get_client(marks[0] if marks else windows[0].key, write=True)
        script = self._scripts.get(id(client))
        if script is None:  # redis-py's Script sends EVALSHA, and the source again only if Redis lost it
            script = self._scripts.setdefault(id(client), client.register_script(ADMIT))
        args = [len(marks), now]
        for window in windows:
            args += [window.window, window.limit, _unique_hit(now)]
        found, hits = script(keys=[*marks, *(w.key for w in windows)], args=args)
        return (
            {marks[int(i) - 1] for i in found},
            [WindowHit(bool(ok), int(count), float(oldest) if oldest else None) for ok, count, oldest in hits],
        )

    def set_many(self, data, timeout):
        """Each key as ``set`` writes it (``SET ... EX``; a timeout of 0 deletes), in one pipeline
        without MULTI/EXEC: Django's is MULTI, MSET, an EXPIRE per key and EXEC, five commands for
        two keys, and its callers here need no atomicity across keys."""
        pipeline = self.get_client(None, write=True).pipeline(transaction=False)
        for key, value in data.items():
            if timeout == 0:
                pipeline.delete(key)
            else:
                pipeline.set(key, self._serializer.dumps(value), ex=timeout)
        pipeline.execute()

    def window_add(self, key: str, *, now: float, window: float) -> None:
        pipeline = self.get_client(key, write=True).pipeline()  # MULTI ... EXEC: atomic, one round trip
        pipeline.zremrangebyscore(key, "-inf", now - window)
        pipeline.zadd(key, {_unique_hit(now): now})
        pipeline.pexpire(key, math.ceil(window * 1000))
        pipeline.execute()

    def window_count(self, key: str, *, now: float, window: float) -> tuple[int, float | None]:
        pipeline = self.get_client(key).pipeline(transaction=False)
        pipeline.zcount(key, f"({now - window!r}", "+inf")
        pipeline.zrangebyscore(key, f"({now - window!r}", "+inf", start=0, num=1, withscores=True)
        count, oldest = pipeline.execute()
        return int(count), float(oldest[0][1]) if oldest else None


def delete_matching(client, pattern: str) -> int:
    """Delete the keys of ``client``'s Redis that match the glob ``pattern`` (SCAN, in batches),
    never the rest: the channel layer, presence, other deployments and test runs share it. How
    many were deleted. The one way this project (and its tests and benchmarks) removes keys."""
    deleted, batch = 0, []
    for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) == 1000:
            deleted += client.delete(*batch)
            batch = []
    if batch:
        deleted += client.delete(*batch)
    return deleted


def _unique_hit(now: float) -> str:
    return f"{now!r}:{uuid.uuid4().hex[:12]}"


_shared_clients: dict[tuple, RedisCacheClient] = {}
_shared_lock = threading.Lock()


class RedisCache(django_redis.RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisCacheClient

    @property
    def _cache(self) -> RedisCacheClient:
        configuration = (tuple(self._servers), repr(sorted(self._options.items())))
        client = _shared_clients.get(configuration)
        if client is None:
            with _shared_lock:
                client = _shared_clients.get(configuration)
                if client is None:
                    client = _shared_clients[configuration] = self._class(self._servers, **self._options)
        return client

    def validate_key(self, key):
        """Nothing to check: Django's check warns of keys memcached would refuse (too long,
        spaces, control characters), and this cache is Redis, which takes any key. It walked
        every character of every key on every request (docs/benchmarks.md, "Issue 17: one round
        trip per write")."""

    def clear(self) -> bool:
        """Delete this cache's keys (those under its ``KEY_PREFIX``), not the whole Redis database
        as Django's ``FLUSHDB`` would: the channel layer, presence and other deployments share it."""
        prefix = "".join(f"\\{c}" if c in "*?[]\\" else c for c in self.key_prefix)  # glob-escaped
        # Django's keys are "prefix:version:key": every version
        delete_matching(self._cache.get_client(write=True), f"{prefix}:*")
        return True

    # The windows below are sorted sets under keys of their own: a key DRF's way wrote (a pickled
    # list, from before this backend or from a per-process fallback) is never read as one.
    def _window_key(self, key: str) -> str:
        return self.make_and_validate_key(f"window:{key}")

    def admit(self, marks: list[str], windows: list[RateWindow], *, now: float) -> tuple[set[str], list[WindowHit]]:
        """In one atomic round trip: which of the cache keys ``marks`` are set (each refuses the
        request: then nothing is counted, and no hit is returned), else a hit on each rate limit
        of ``windows`` (their keys are windows' names, as ``sliding_window_hit`` takes them)."""
        if not marks and not windows:
            return set(), []
        keys = {self.make_and_validate_key(mark): mark for mark in marks}
        windows_here = [w._replace(key=self._window_key(w.key)) for w in windows]
        found, hits = self._cache.admit(list(keys), windows_here, now=now)
        return {keys[key] for key in found}, hits

    def sliding_window_hit(self, key: str, *, now: float, window: float, limit: int) -> WindowHit:
        """Count a hit on ``key`` if fewer than ``limit`` fell within the last ``window`` seconds
        (``admit`` with this one rate limit and no marks)."""
        return self.admit([], [RateWindow(key, window, limit)], now=now)[1][0]

    def window_add(self, key: str, *, now: float, window: float) -> None:
        """Record a hit on ``key`` (kept ``window`` seconds), whatever the count: atomic, unlike a
        read of the history followed by a write of it, which loses hits recorded in between."""
        self._cache.window_add(self._window_key(key), now=now, window=window)

    def window_count(self, key: str, *, now: float, window: float) -> tuple[int, float | None]:
        """The hits on ``key`` within the last ``window`` seconds, and the oldest one's time."""
        return self._cache.window_count(self._window_key(key), now=now, window=window)
