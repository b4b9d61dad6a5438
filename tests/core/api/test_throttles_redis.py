"""The rate limits on the Redis cache (core.api.throttles with core.cache.RedisCache), against
the real Redis: DRF's window, limit and Retry-After, in one atomic round trip per check; for a
bearer request, one round trip with its token's revocation marks."""

from __future__ import annotations

import json
import threading

import jwt
import pytest
import redis
import redis.connection
from django.test import override_settings
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from accounts import tokens
from accounts.tokens import issue_token_pair
from core.api.throttles import UserThrottle
from tests.factories import make_user
from tests.support.api import throttle_rates

pytestmark = pytest.mark.django_db


class LimitedApi(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [UserThrottle]

    def get(self, request):
        return Response({"ok": True})


def call(user):
    request = APIRequestFactory().get("/limited")
    force_authenticate(request, user=user)
    return LimitedApi.as_view()(request)


def test_the_limit_the_window_and_retry_after_are_drfs(redis_cache, clock):
    ada, bob = make_user(), make_user()
    with override_settings(REST_FRAMEWORK=throttle_rates(user="3/min")):
        assert [call(ada).status_code for _ in range(3)] == [200, 200, 200]
        clock[0] += 20
        refused = call(ada)
        assert refused.status_code == 429
        assert refused["Retry-After"] == "40"  # the oldest hit leaves the window in 40 s
        assert call(bob).status_code == 200  # per user
        clock[0] += 40.5
        assert call(ada).status_code == 200  # the first three have left the window
        assert call(ada).status_code == 200
        assert call(ada).status_code == 200
        assert call(ada).status_code == 429


def test_concurrent_requests_never_pass_more_than_the_limit(redis_cache):
    user = make_user()
    request = APIRequestFactory().get("/limited")
    force_authenticate(request, user=user)
    request = LimitedApi().initialize_request(request)
    assert request.user == user  # authenticated here; the threads only count
    allowed, start = [], threading.Barrier(20)

    def hit():
        start.wait(timeout=10)
        allowed.append(UserThrottle().allow_request(request, None))

    with override_settings(REST_FRAMEWORK=throttle_rates(user="5/min")):
        threads = [threading.Thread(target=hit) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    assert len(allowed) == 20 and allowed.count(True) == 5


def test_a_check_is_one_redis_command(redis_cache, monkeypatch):
    user = make_user()
    with override_settings(REST_FRAMEWORK=throttle_rates(user="100/min")):
        assert call(user).status_code == 200  # loads the script
        sent = count_redis_commands(monkeypatch)
        assert call(user).status_code == 200
    assert sent == ["EVALSHA"]


# --- a bearer request: its token's marks and its rate limits in one round trip ---------------------


class SecondLimit(UserThrottle):
    scope = "call_initiate"


class TwoLimitsApi(LimitedApi):
    throttle_classes = [UserThrottle, SecondLimit]


def bearer_call(token: str, view=TwoLimitsApi):
    return view.as_view()(APIRequestFactory().get("/limited", HTTP_AUTHORIZATION=f"Bearer {token}")).render()


def error_of(response) -> dict:
    return json.loads(response.content)["error"]


def count_redis_commands(monkeypatch) -> list[str]:
    sent = []
    original = redis.connection.AbstractConnection.send_command

    def counting(self, *args, **kwargs):
        sent.append(str(args[0]).upper())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_command", counting)
    return sent


def test_a_bearer_request_checks_its_token_and_counts_its_rate_limits_in_one_round_trip(
    redis_cache, clock, monkeypatch
):
    token = issue_token_pair(make_user())["access_token"]
    with override_settings(REST_FRAMEWORK=throttle_rates(user="2/min", call_initiate="3/min")):
        assert bearer_call(token).status_code == 200  # loads the script
        sent = count_redis_commands(monkeypatch)
        assert bearer_call(token).status_code == 200
        assert sent == ["EVALSHA"]  # revocation marks, both limits: one command
        clock[0] += 15
        refused = bearer_call(token)
    assert refused.status_code == 429
    assert refused["Retry-After"] == "45"  # as DRF computes it: the oldest of 2 leaves in 45 s
    assert sent == ["EVALSHA"] * 2


def test_a_revoked_token_or_disabled_account_is_refused_and_never_counted(redis_cache, clock):
    user = make_user()
    stolen, fresh = issue_token_pair(user)["access_token"], issue_token_pair(user)["access_token"]
    tokens.family_revoke(jwt.decode(stolen, options={"verify_signature": False})["fam"])
    with override_settings(REST_FRAMEWORK=throttle_rates(user="2/min", call_initiate="2/min")):
        for _ in range(5):
            refused = bearer_call(stolen)
            assert refused.status_code == 401
            assert error_of(refused) == {"code": "UNAUTHORIZED", "message": "Token has been revoked", "details": {}}
        tokens.set_user_disabled(user.id, True)
        for _ in range(5):
            refused = bearer_call(fresh)
            assert refused.status_code == 401
            assert error_of(refused) == {"code": "UNAUTHORIZED", "message": "This account is disabled.", "details": {}}
        tokens.set_user_disabled(user.id, False)
        # Ten refused requests counted nothing: the account's own token has its whole limit.
        assert [bearer_call(fresh).status_code for _ in range(3)] == [200, 200, 429]
