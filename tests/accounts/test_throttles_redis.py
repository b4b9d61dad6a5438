"""Every rule of tests/accounts/test_throttles.py, again on the Redis cache, where the limits are
counted in atomic windows (core.cache) rather than DRF's read-then-write of a history; and
failed logins arriving at once, each counted."""

import threading

import pytest
from django.test import RequestFactory, override_settings

from accounts.throttles import LoginAddressThrottle
from tests.accounts.test_throttles import *  # noqa: F403 (the same tests, collected here too)
from tests.support.api import throttle_rates

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def on_redis(redis_cache):
    return redis_cache


def test_failed_logins_arriving_at_once_are_each_counted(clock):
    request = RequestFactory().post("/v1/auth/login", REMOTE_ADDR="10.9.9.9")
    start = threading.Barrier(20)

    def fail():
        start.wait(timeout=10)
        LoginAddressThrottle().record_failure(request, None, "someone@example.test")

    with override_settings(REST_FRAMEWORK=throttle_rates(login="25/min")):
        threads = [threading.Thread(target=fail) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        throttle = LoginAddressThrottle()
        assert throttle.allow_request(request, None, "someone@example.test")  # 20 of 25
        assert throttle._window[0] == 20  # none lost (a read-then-write loses those in between)
    with override_settings(REST_FRAMEWORK=throttle_rates(login="20/min")):
        refused = LoginAddressThrottle()
        assert not refused.allow_request(request, None, "someone@example.test")
        assert 59 <= refused.wait() <= 60
