"""The Redis cache backend of ``CACHES`` (``secureconnect/settings.py``): Django's, reusing its
clients.

Django's ``RedisCacheClient.get_client`` builds a new ``redis.Redis`` for every command, and each
one fills a table of about 170 response callbacks: a quarter of a millisecond, several times a
request (token revocation, throttles, the snapshot cache). A ``redis.Redis`` is safe to share
between threads (each command takes a connection from the pool), so one per pool is kept.
"""

from __future__ import annotations

from django.core.cache.backends import redis as django_redis


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
