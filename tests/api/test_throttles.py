"""Rate limits: failed logins per account and per address, registrations per address,
every other authenticated endpoint per user, call initiation per caller."""

import pytest
from django.test import override_settings
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from accounts.tokens import issue_token_pair
from secureconnect.api.throttles import CallInitiateThrottle
from tests.api.helpers import bearer, post_json
from tests.factories import DEFAULT_PASSWORD, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.portable]
LOGIN = "/v1/auth/login"


def rates(**overrides) -> dict:
    return {
        **api_settings.user_settings,
        "DEFAULT_THROTTLE_RATES": {**api_settings.DEFAULT_THROTTLE_RATES, **overrides},
    }


@pytest.fixture
def clock(monkeypatch):
    """Throttle time under the test's control."""
    now = [1_000_000.0]
    monkeypatch.setattr(SimpleRateThrottle, "timer", lambda self: now[0])
    return now


def failed_login(client, email, address="10.0.0.1"):
    return post_json(client, LOGIN, {"email": email, "password": "wrong-password"}, REMOTE_ADDR=address)


def good_login(client, user, address="10.0.0.1"):
    return post_json(client, LOGIN, {"email": user.email, "password": DEFAULT_PASSWORD}, REMOTE_ADDR=address)


def test_the_default_login_limit_is_five_failures_a_minute():
    assert api_settings.DEFAULT_THROTTLE_RATES["login"] == "5/min"


def test_failed_logins_for_one_account_are_throttled_whatever_the_address(client, clock):
    user = make_user()
    for n in range(5):
        assert failed_login(client, user.email, address=f"10.0.1.{n}").status_code == 401
    response = failed_login(client, user.email, address="10.0.1.99")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "RATE_LIMITED"
    assert int(response["Retry-After"]) > 0


def test_a_throttled_account_is_refused_even_with_the_right_password(client, clock):
    user = make_user()
    for n in range(5):
        failed_login(client, user.email, address=f"10.0.2.{n}")
    assert good_login(client, user, address="10.0.2.99").status_code == 429


def test_the_account_limit_ignores_email_case(client, clock):
    user = make_user(email="casey@example.test")
    for n in range(5):
        failed_login(client, "CASEY@example.test" if n % 2 else "casey@example.test", address=f"10.0.3.{n}")
    assert good_login(client, user, address="10.0.3.99").status_code == 429


def test_failed_logins_from_one_address_are_throttled_whatever_the_account(client, clock):
    for n in range(5):
        assert failed_login(client, f"nobody{n}@example.test", address="10.0.4.1").status_code == 401
    assert failed_login(client, "someone.else@example.test", address="10.0.4.1").status_code == 429


def test_other_accounts_and_addresses_are_unaffected(client, clock):
    victim, bystander = make_user(), make_user()
    for n in range(5):
        failed_login(client, victim.email, address=f"10.0.5.{n}")
    assert good_login(client, bystander, address="10.0.5.200").status_code == 200


def test_successful_logins_are_not_counted(client, clock):
    user = make_user()
    for _ in range(8):
        assert good_login(client, user).status_code == 200


def test_the_login_limit_lifts_after_the_window(client, clock):
    user = make_user()
    for n in range(5):
        failed_login(client, user.email, address=f"10.0.6.{n}")
    assert good_login(client, user, address="10.0.6.99").status_code == 429
    clock[0] += 61
    assert good_login(client, user, address="10.0.6.99").status_code == 200


def test_a_forwarded_for_header_does_not_dodge_the_address_limit(client, clock):
    for n in range(5):
        post_json(
            client,
            LOGIN,
            {"email": f"x{n}@example.test", "password": "wrong"},
            REMOTE_ADDR="10.0.7.1",
            headers={"X-Forwarded-For": f"192.0.2.{n}"},
        )
    assert failed_login(client, "y@example.test", address="10.0.7.1").status_code == 429


def test_registrations_are_limited_per_address(client, clock):
    with override_settings(REST_FRAMEWORK=rates(register="2/hour")):
        for n in range(2):
            body = {"email": f"r{n}@example.test", "username": f"reg_{n}", "password": "a-long-unusual-passphrase"}
            assert post_json(client, "/v1/auth/register", body, REMOTE_ADDR="10.0.8.1").status_code == 201
        body = {"email": "r9@example.test", "username": "reg_9", "password": "a-long-unusual-passphrase"}
        response = post_json(client, "/v1/auth/register", body, REMOTE_ADDR="10.0.8.1")
        assert response.status_code == 429
        assert post_json(client, "/v1/auth/register", body, REMOTE_ADDR="10.0.8.2").status_code == 201


def test_authenticated_endpoints_are_limited_per_user(client, clock):
    alice, bob = make_user(), make_user()
    alice_token, bob_token = issue_token_pair(alice)["access_token"], issue_token_pair(bob)["access_token"]
    with override_settings(REST_FRAMEWORK=rates(user="2/min")):
        assert client.get("/v1/users/me", headers=bearer(alice_token)).status_code == 200
        assert client.get("/v1/users/me", headers=bearer(alice_token)).status_code == 200
        throttled = client.get("/v1/users/me", headers=bearer(alice_token))
        assert throttled.status_code == 429
        assert throttled.json()["error"]["details"]["retry_after"] == int(throttled["Retry-After"])
        assert client.get("/v1/users/me", headers=bearer(bob_token)).status_code == 200


def test_a_missing_token_is_401_not_429(client, clock):
    with override_settings(REST_FRAMEWORK=rates(user="1/min")):
        assert client.get("/v1/users/me").status_code == 401
        assert client.get("/v1/users/me").status_code == 401


class InitiateApi(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [CallInitiateThrottle]

    def post(self, request):
        return Response({"ok": True})


def initiate(user):
    request = APIRequestFactory().post("/v1/calls/initiate", {}, format="json")
    force_authenticate(request, user=user)
    return InitiateApi.as_view()(request)


def test_call_initiation_defaults_to_ten_a_minute():
    assert CallInitiateThrottle().rate == "10/min"


def test_call_initiation_is_limited_per_caller(clock):
    caller, other = make_user(), make_user()
    with override_settings(REST_FRAMEWORK=rates(call_initiate="3/min")):
        statuses = [initiate(caller).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        assert initiate(other).status_code == 200
