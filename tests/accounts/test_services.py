"""The accounts services, where their behaviour is not visible through the API alone."""

import pytest
from django.db import OperationalError

from accounts import services, tokens
from accounts.exceptions import AccountAlreadyExists, InvalidCredentials
from tests.factories import DEFAULT_PASSWORD, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.portable]


def test_register_stores_the_canonical_email():
    user = services.user_register(
        email=" Grace@Example.TEST ", username="grace", password="a-long-unusual-passphrase", display_name=""
    )
    user.refresh_from_db()
    assert user.email == "grace@example.test"


def test_register_losing_a_race_for_the_email_is_a_conflict(monkeypatch):
    real_check = services._check_available
    calls = []

    def check_then_let_a_rival_register(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            make_user(email="grace@example.test")  # the rival's row lands after our check
            return
        real_check(**kwargs)

    monkeypatch.setattr(services, "_check_available", check_then_let_a_rival_register)
    with pytest.raises(AccountAlreadyExists) as caught:
        services.user_register(
            email="grace@example.test", username="grace", password="a-long-unusual-passphrase", display_name=""
        )
    assert set(caught.value.details) == {"email"}


def test_login_returns_tokens_for_the_user():
    user = make_user()
    result = services.user_login(email=user.email, password=DEFAULT_PASSWORD)
    assert result.user == user
    assert tokens.decode_access_token(result.access_token).user_id == user.id


def test_login_with_a_wrong_password_raises_invalid_credentials():
    user = make_user()
    with pytest.raises(InvalidCredentials):
        services.user_login(email=user.email, password="wrong")


def test_refresh_carries_on_from_the_token_while_the_database_is_away(monkeypatch):
    user = make_user(username="before_outage")
    refresh = tokens.issue_token_pair(user)["refresh_token"]

    def database_away(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(services, "user_get_active", database_away)
    access = services.token_refresh(refresh_token=refresh)["access_token"]
    claims = tokens.decode_access_token(access)
    assert (claims.user_id, claims.username) == (user.id, "before_outage")


def test_logout_revokes_both_tokens_by_jti():
    user = make_user()
    pair = tokens.issue_token_pair(user)
    access = tokens.decode_access_token(pair["access_token"])
    refresh = tokens.decode_refresh_token(pair["refresh_token"])
    services.user_logout(access_claims=access, refresh_token=pair["refresh_token"])
    assert tokens.is_revoked(access.jti)
    assert tokens.is_revoked(refresh.jti)
