"""Rate limits: failed logins per (account, address), per address and per account,
registrations and token refreshes per address, every other authenticated endpoint per user.
(Call initiation per caller: tests/calls/test_throttles.py.)"""

import pytest
from django.test import override_settings
from rest_framework.settings import api_settings

from accounts.tokens import issue_token_pair
from tests.factories import DEFAULT_PASSWORD, make_user
from tests.support.api import bearer, post_json, throttle_rates

pytestmark = [pytest.mark.django_db, pytest.mark.portable]
LOGIN = "/v1/auth/login"
REFRESH = "/v1/auth/refresh"
ADMIN_LOGIN = "/admin/login/"


def failed_login(client, email, address="10.0.0.1"):
    return post_json(client, LOGIN, {"email": email, "password": "wrong-password"}, REMOTE_ADDR=address)


def good_login(client, user, address="10.0.0.1"):
    return post_json(client, LOGIN, {"email": user.email, "password": DEFAULT_PASSWORD}, REMOTE_ADDR=address)


def test_the_default_login_limits_are_five_and_twenty_failures_a_minute():
    assert api_settings.DEFAULT_THROTTLE_RATES["login"] == "5/min"
    assert api_settings.DEFAULT_THROTTLE_RATES["login_account"] == "20/min"


def test_an_attacker_elsewhere_cannot_lock_the_owner_out(client, clock):
    user = make_user()
    for _ in range(5):
        failed_login(client, user.email, address="203.0.113.66")
    attacker = good_login(client, user, address="203.0.113.66")
    assert attacker.status_code == 429
    assert int(attacker["Retry-After"]) > 0
    assert good_login(client, user, address="198.51.100.7").status_code == 200


def test_brute_force_on_one_account_from_many_addresses_is_throttled_after_twenty_failures(client, clock):
    user = make_user()
    for n in range(20):
        assert failed_login(client, user.email, address=f"10.0.2.{n}").status_code == 401
    assert failed_login(client, user.email, address="10.0.2.99").status_code == 429
    assert good_login(client, user, address="10.0.2.100").status_code == 429


def test_the_account_limits_ignore_email_case(client, clock):
    user = make_user(email="casey@example.test")
    for n in range(5):
        failed_login(client, "CASEY@example.test" if n % 2 else "casey@example.test", address="10.0.3.1")
    assert (
        post_json(
            client, LOGIN, {"email": "Casey@Example.TEST", "password": DEFAULT_PASSWORD}, REMOTE_ADDR="10.0.3.1"
        ).status_code
        == 429
    )
    assert good_login(client, user, address="10.0.3.2").status_code == 200


def test_look_alike_emails_do_not_get_fresh_attempts_of_their_own(client, clock):
    """``kri\\u017ftis@`` (long s), ``\\u212aristis@`` (Kelvin sign) and ``KRISTIS@`` are ``kristis@``."""
    user = make_user(email="kristis@example.test")
    with override_settings(REST_FRAMEWORK=throttle_rates(login="100/min", login_account="3/min")):
        for n, email in enumerate(["kriſtis@example.test", "\u212aristis@example.test", "KRISTIS@example.test"]):
            assert failed_login(client, email, address=f"10.0.9.{n}").status_code == 401
        assert good_login(client, user, address="10.0.9.99").status_code == 429


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
    for _ in range(5):
        failed_login(client, user.email, address="10.0.6.1")
    assert good_login(client, user, address="10.0.6.1").status_code == 429
    clock[0] += 61
    assert good_login(client, user, address="10.0.6.1").status_code == 200


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
    with override_settings(REST_FRAMEWORK=throttle_rates(register="2/hour")):
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
    with override_settings(REST_FRAMEWORK=throttle_rates(user="2/min")):
        assert client.get("/v1/users/me", headers=bearer(alice_token)).status_code == 200
        assert client.get("/v1/users/me", headers=bearer(alice_token)).status_code == 200
        throttled = client.get("/v1/users/me", headers=bearer(alice_token))
        assert throttled.status_code == 429
        assert throttled.json()["error"]["details"]["retry_after"] == int(throttled["Retry-After"])
        assert client.get("/v1/users/me", headers=bearer(bob_token)).status_code == 200


def test_a_missing_token_is_401_not_429(client, clock):
    with override_settings(REST_FRAMEWORK=throttle_rates(user="1/min")):
        assert client.get("/v1/users/me").status_code == 401
        assert client.get("/v1/users/me").status_code == 401


# --- token refresh ----------------------------------------------------------------------------


def test_refresh_is_limited_per_address(client, clock):
    with override_settings(REST_FRAMEWORK=throttle_rates(refresh="2/min")):
        for _ in range(2):
            response = post_json(client, REFRESH, {"refresh_token": "guess"}, REMOTE_ADDR="10.0.11.1")
            assert response.status_code == 401
        throttled = post_json(client, REFRESH, {"refresh_token": "guess"}, REMOTE_ADDR="10.0.11.1")
        assert throttled.status_code == 429
        assert throttled.json()["error"]["code"] == "RATE_LIMITED"
        assert post_json(client, REFRESH, {"refresh_token": "guess"}, REMOTE_ADDR="10.0.11.2").status_code == 401


def test_the_default_refresh_limit_is_thirty_a_minute():
    assert api_settings.DEFAULT_THROTTLE_RATES["refresh"] == "30/min"


# --- the admin log-in -------------------------------------------------------------------------


def admin_login(client, email, password, address="10.0.12.1"):
    client.get(ADMIN_LOGIN)
    return client.post(ADMIN_LOGIN, {"username": email, "password": password, "next": "/admin/"}, REMOTE_ADDR=address)


def test_thirty_wrong_admin_passwords_then_the_right_one_is_refused(client, clock):
    staff = make_user(is_staff=True, is_superuser=True)
    for _ in range(30):
        assert admin_login(client, staff.email, "wrong-password").status_code == 200
    response = admin_login(client, staff.email, DEFAULT_PASSWORD)
    assert response.status_code == 200
    assert "Too many failed log-ins" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_wrong_admin_passwords_from_elsewhere_do_not_lock_the_owner_out_of_the_admin(client, clock):
    staff = make_user(is_staff=True, is_superuser=True)
    for _ in range(5):
        admin_login(client, staff.email, "wrong-password", address="203.0.113.66")
    assert (
        "Too many failed log-ins" in admin_login(client, staff.email, DEFAULT_PASSWORD, "203.0.113.66").content.decode()
    )
    response = admin_login(client, staff.email.upper(), DEFAULT_PASSWORD, address="198.51.100.7")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(staff.pk)


def test_admin_and_api_failures_count_against_the_same_account_limit(client, clock):
    staff = make_user(is_staff=True, is_superuser=True)
    for n in range(10):
        admin_login(client, staff.email, "wrong-password", address=f"10.0.13.{n}")
        failed_login(client, staff.email, address=f"10.0.14.{n}")
    assert good_login(client, staff, address="10.0.15.1").status_code == 429
    assert "Too many failed log-ins" in admin_login(client, staff.email, DEFAULT_PASSWORD, "10.0.15.2").content.decode()
