"""The Redis cache backend (core.cache) against the real Redis: it works as Django's does and
builds one ``redis.Redis`` per pool rather than one per command."""

from __future__ import annotations

import contextvars
import uuid

import redis
import redis.connection
from django.core.cache import caches

from tests.support.counting import count_outermost_calls


def test_values_round_trip_with_timeouts_and_many_at_once(redis_cache):
    redis_cache.set("a", {"n": 1}, 30)
    assert redis_cache.get("a") == {"n": 1}
    assert redis_cache.add("a", "other", 30) is False
    redis_cache.set_many({"b": 2, "c": [3]}, 30)
    assert redis_cache.get_many(["a", "b", "c", "missing"]) == {"a": {"n": 1}, "b": 2, "c": [3]}
    redis_cache.delete("a")
    assert redis_cache.get("a", "gone") == "gone"


def test_a_key_memcached_would_refuse_is_stored_without_a_warning(redis_cache, recwarn):
    """Django warns of keys memcached would refuse; Redis takes them, so this cache does not check."""
    key = "a key with spaces and \u00e9 " + "x" * 300
    redis_cache.set(key, 1, 30)
    assert redis_cache.get(key) == 1
    assert [str(w.message) for w in recwarn.list if "memcached" in str(w.message)] == []


def test_set_many_is_a_set_with_its_expiry_per_key_in_one_pipeline_without_multi(redis_cache, monkeypatch):
    redis_cache.set("gone", 1, 30)
    sent = []
    original = redis.connection.AbstractConnection.send_packed_command

    def recording(self, command, *args, **kwargs):
        sent.append(command)
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", recording)
    redis_cache.set_many({"x": {"n": 1}, "y": [2], "gone": 3}, 0)  # a timeout of 0 deletes, as set does
    redis_cache.set_many({"x": {"n": 1}, "y": [2]}, 30)
    monkeypatch.undo()
    assert len(sent) == 2  # one write per set_many
    written = b"".join(b"".join(c) if isinstance(c, list) else c for c in sent[1:])
    assert b"MULTI" not in written and b"MSET" not in written and b"EXPIRE" not in written
    assert redis_cache.get_many(["x", "y", "gone"]) == {"x": {"n": 1}, "y": [2]}
    client = redis_cache._cache.get_client(write=True)
    assert 25 <= client.ttl(redis_cache.make_and_validate_key("x")) <= 30  # each key has its expiry
    assert 25 <= client.ttl(redis_cache.make_and_validate_key("y")) <= 30


def test_one_redis_client_serves_every_command(redis_cache, monkeypatch):
    built = count_outermost_calls(monkeypatch, redis.Redis, ("__init__",))
    for n in range(20):
        redis_cache.set(f"k{n}", n, 30)
        assert redis_cache.get(f"k{n}") == n
    assert redis_cache.get_many([f"k{n}" for n in range(3)]) == {"k0": 0, "k1": 1, "k2": 2}
    assert len(built) <= 1  # Django's own client builds 41 here (none: an earlier test built it)


def test_requests_share_one_connection_pool_where_django_opens_one_each(redis_cache, monkeypatch):
    """Django keeps cache backends per async context, so under ASGI each request gets a new
    backend; they must not each open a connection to Redis."""
    connects = count_outermost_calls(monkeypatch, redis.connection.Connection, ("_connect",))

    def request(n):  # each ASGI request runs in a context of its own
        backend = caches["default"]
        backend.set(f"r{n}", n, 30)
        return backend

    backends = [contextvars.Context().run(request, n) for n in range(10)]
    assert len({id(b) for b in backends}) == 10  # Django's per-context backends, as before
    assert len({id(b._cache) for b in backends}) == 1
    assert redis_cache.get_many([f"r{n}" for n in range(10)]) == {f"r{n}": n for n in range(10)}
    assert len(connects) <= 1


def test_clearing_deletes_this_caches_keys_and_nothing_else_in_redis(redis_cache):
    other = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    outsider = f"test-cache-outsider-{uuid.uuid4().hex[:8]}"
    try:
        other.set(outsider, "not ours", ex=60)
        redis_cache.set("mine", 1, 30)
        redis_cache.set("mine-too", 2, 30, version=7)
        assert redis_cache.clear() is True
        assert redis_cache.get("mine") is None and redis_cache.get("mine-too", version=7) is None
        assert other.get(outsider) == b"not ours"
    finally:
        other.delete(outsider)
        other.close()
