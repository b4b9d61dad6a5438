"""Fixtures shared by the whole suite: persistence state, the spool, a switchable database."""

from __future__ import annotations

import uuid

import pytest
import redis
from django.core.cache import cache, caches
from django.db import connections
from django.test import override_settings
from rest_framework.throttling import SimpleRateThrottle

from bench.tcp_proxy import TcpProxy
from calls import presence
from calls.persistence import availability
from core.cache import delete_matching

TEST_REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(autouse=True)
def fresh_cache():
    """Rate limits, token revocations and call snapshots live in the cache: each test starts empty."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def redis_cache():
    """The service's Redis cache backend (core.cache) on the real Redis, under a prefix of this
    test's own, in place of the per-process cache; its keys are deleted after (never a flush)."""
    prefix = f"test-cache-{uuid.uuid4().hex[:8]}"
    config = {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": TEST_REDIS_URL, "KEY_PREFIX": prefix}}
    with override_settings(CACHES=config):
        yield caches["default"]
    shared = redis.Redis.from_url(TEST_REDIS_URL)  # by prefix, whatever the backend: never a flush
    try:
        delete_matching(shared, f"{prefix}:*")
    finally:
        shared.close()


@pytest.fixture(autouse=True)
def fresh_presence():
    """Presence (calls.presence) lives in this process's memory in tests without Redis."""
    presence.reset_for_tests()
    yield
    presence.reset_for_tests()


@pytest.fixture(autouse=True)
def operational_persistence():
    """Each test starts with the database taken as reachable, as a settled server would."""
    availability.reset_for_tests(availability.OPERATIONAL)
    yield
    availability.reset_for_tests(availability.OPERATIONAL)


@pytest.fixture
def spool_path(tmp_path, settings):
    settings.SPOOL_PATH = tmp_path / "spool.sqlite3"
    return settings.SPOOL_PATH


@pytest.fixture
def db_proxy(transactional_db):
    """The test database behind a TCP proxy that the test can take down and bring back.

    The default connection is pointed at the proxy for the test, and back afterwards."""
    connection = connections["default"]
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    settings_dict = connection.settings_dict
    original = (settings_dict["HOST"], settings_dict["PORT"])
    proxy = TcpProxy(target_host=original[0] or "127.0.0.1", target_port=int(original[1] or 5432))
    proxy.start()
    connection.close()
    settings_dict["HOST"], settings_dict["PORT"] = "127.0.0.1", proxy.port
    try:
        yield proxy
    finally:
        proxy.up()
        connection.close()
        settings_dict["HOST"], settings_dict["PORT"] = original
        proxy.stop()


@pytest.fixture
def clock(monkeypatch):
    """Throttle time under the test's control (``SimpleRateThrottle.timer``)."""
    now = [1_000_000.0]
    monkeypatch.setattr(SimpleRateThrottle, "timer", lambda self: now[0])
    return now
