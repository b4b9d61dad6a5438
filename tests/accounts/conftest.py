import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def fresh_cache():
    """Rate-limit counters and token revocations live in the cache: each test starts empty."""
    cache.clear()
    yield
    cache.clear()
