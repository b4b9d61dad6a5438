"""Tokens: the claims we issue, the tokens of the Go auth service we accept, what we refuse,
and revocation. Verifying an access token never touches the database."""

import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from django.conf import settings

from accounts import tokens
from accounts.models import User
from tests.support.api import hand_made_token, legacy_claims
from tests.support.counting import count_outermost_calls

pytestmark = pytest.mark.portable


def unsaved_user(**fields) -> User:
    defaults = {"id": uuid.uuid4(), "email": "ada@example.test", "username": "ada"}
    return User(**{**defaults, **fields})


def raw_claims(token: str) -> dict:
    return jwt.decode(token, settings.JWT_SECRET, algorithms=["HS256"], audience=tokens.AUDIENCE)


def test_access_token_carries_the_claims_the_go_service_uses():
    user = unsaved_user()
    claims = raw_claims(tokens.issue_token_pair(user)["access_token"])
    assert claims["user_id"] == claims["sub"] == str(user.id)
    assert (claims["email"], claims["username"], claims["role"]) == ("ada@example.test", "ada", "user")
    assert (claims["aud"], claims["iss"], claims["type"]) == ("secureconnect-api", "secureconnect-auth", "access")
    assert claims["jti"]


def test_access_token_lives_fifteen_minutes_by_default():
    claims = raw_claims(tokens.issue_token_pair(unsaved_user())["access_token"])
    assert claims["exp"] - claims["iat"] == 900


def test_refresh_token_lives_thirty_days_and_says_refresh():
    claims = raw_claims(tokens.issue_token_pair(unsaved_user())["refresh_token"])
    assert claims["exp"] - claims["iat"] == 30 * 24 * 3600
    assert claims["type"] == "refresh"


def test_token_lifetimes_follow_the_settings(settings):
    settings.JWT_ACCESS_TTL = 60
    settings.JWT_REFRESH_TTL = 120
    pair = tokens.issue_token_pair(unsaved_user())
    access, refresh = raw_claims(pair["access_token"]), raw_claims(pair["refresh_token"])
    assert (access["exp"] - access["iat"], refresh["exp"] - refresh["iat"]) == (60, 120)


def test_every_token_has_its_own_jti():
    pair = tokens.issue_token_pair(unsaved_user())
    assert raw_claims(pair["access_token"])["jti"] != raw_claims(pair["refresh_token"])["jti"]


def test_staff_get_the_admin_role():
    claims = tokens.decode_access_token(tokens.issue_token_pair(unsaved_user(is_staff=True))["access_token"])
    assert claims.role == "admin"


def test_decoded_access_claims_are_typed():
    user = unsaved_user()
    claims = tokens.decode_access_token(tokens.issue_token_pair(user)["access_token"])
    assert claims.user_id == user.id
    assert isinstance(claims.user_id, uuid.UUID)
    assert claims.expires_at.tzinfo is not None
    assert timedelta(minutes=14) < claims.expires_at - datetime.now(UTC) <= timedelta(minutes=15)


def test_a_token_of_the_go_service_without_type_is_an_access_token():
    claims = legacy_claims()
    decoded = tokens.decode_access_token(hand_made_token(claims))
    assert str(decoded.user_id) == claims["user_id"]
    assert (decoded.email, decoded.username, decoded.role, decoded.jti) == (
        claims["email"],
        claims["username"],
        "user",
        claims["jti"],
    )


def test_a_token_without_role_is_a_user():
    assert tokens.decode_access_token(hand_made_token(legacy_claims(role=None))).role == "user"


def test_a_token_with_type_access_is_accepted():
    assert tokens.decode_access_token(hand_made_token(legacy_claims(type="access")))


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"aud": "another-api"}, id="wrong audience"),
        pytest.param({"aud": None}, id="no audience"),
        pytest.param({"iss": "someone-else"}, id="wrong issuer"),
        pytest.param({"iss": None}, id="no issuer"),
        pytest.param({"jti": None}, id="no jti"),
        pytest.param({"exp": None}, id="no expiry"),
        pytest.param({"user_id": "not-a-uuid", "sub": "not-a-uuid"}, id="user_id not a uuid"),
        pytest.param({"sub": str(uuid.uuid4())}, id="sub differs from user_id"),
        pytest.param({"type": "refresh"}, id="a refresh token"),
        pytest.param({"username": 42}, id="username not a string"),
    ],
)
def test_access_tokens_with_wrong_claims_are_invalid(overrides):
    with pytest.raises(tokens.InvalidToken, match=r"^Invalid token$"):
        tokens.decode_access_token(hand_made_token(legacy_claims(**overrides)))


def test_a_token_signed_with_another_secret_is_invalid():
    token = hand_made_token(legacy_claims(), secret="another-secret-of-at-least-thirty-two-chars")
    with pytest.raises(tokens.InvalidToken, match=r"^Invalid token$"):
        tokens.decode_access_token(token)


def test_an_unsigned_token_alg_none_is_invalid():
    token = jwt.encode(legacy_claims(), None, algorithm="none")
    with pytest.raises(tokens.InvalidToken, match=r"^Invalid token$"):
        tokens.decode_access_token(token)


def test_a_token_signed_with_another_algorithm_is_invalid(settings):
    settings.JWT_SECRET = "k" * 64  # long enough for HS512, so only the algorithm differs
    token = hand_made_token(legacy_claims(), algorithm="HS512")
    with pytest.raises(tokens.InvalidToken, match=r"^Invalid token$"):
        tokens.decode_access_token(token)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "Bearer x"])
def test_garbage_is_an_invalid_token(garbage):
    with pytest.raises(tokens.InvalidToken, match=r"^Invalid token$"):
        tokens.decode_access_token(garbage)


def test_an_expired_token_says_it_has_expired():
    an_hour_ago = int((datetime.now(UTC) - timedelta(hours=1)).timestamp())
    token = hand_made_token(legacy_claims(exp=an_hour_ago, iat=an_hour_ago - 900))
    with pytest.raises(tokens.InvalidToken, match=r"^Token has expired$"):
        tokens.decode_access_token(token)


def test_an_access_token_is_not_a_refresh_token():
    pair = tokens.issue_token_pair(unsaved_user())
    with pytest.raises(tokens.InvalidToken):
        tokens.decode_refresh_token(pair["access_token"])


def test_a_legacy_token_without_type_is_not_a_refresh_token():
    with pytest.raises(tokens.InvalidToken):
        tokens.decode_refresh_token(hand_made_token(legacy_claims()))


def test_refresh_claims_carry_the_identity():
    user = unsaved_user()
    claims = tokens.decode_refresh_token(tokens.issue_token_pair(user)["refresh_token"])
    assert (claims.user_id, claims.email, claims.username, claims.role) == (user.id, user.email, "ada", "user")


def test_a_revoked_access_token_is_refused():
    token = tokens.issue_token_pair(unsaved_user())["access_token"]
    claims = tokens.decode_access_token(token)
    tokens.revoke(claims.jti, claims.expires_at)
    with pytest.raises(tokens.InvalidToken, match="revoked"):
        tokens.decode_access_token(token)


def test_an_access_token_is_checked_in_one_cache_read_for_revocation_its_session_and_a_disabled_account(
    monkeypatch,
):
    user = unsaved_user()
    pair = tokens.issue_token_pair(user)
    session = tokens.decode_refresh_token(pair["refresh_token"]).family
    reads = count_outermost_calls(monkeypatch, tokens.cache, ("get", "get_many"))
    assert tokens.decode_access_token(pair["access_token"]).user_id == user.id
    assert reads == ["get_many"]

    tokens.set_user_disabled(user.id, True)
    with pytest.raises(tokens.InvalidToken, match="disabled"):
        tokens.decode_access_token(pair["access_token"])
    tokens.family_revoke(session)
    with pytest.raises(tokens.InvalidToken, match="revoked"):  # the revocation is said first
        tokens.decode_access_token(pair["access_token"])
    assert reads == ["get_many"] * 3


def test_a_revoked_refresh_token_is_refused():
    token = tokens.issue_token_pair(unsaved_user())["refresh_token"]
    claims = tokens.decode_refresh_token(token)
    tokens.revoke(claims.jti, claims.expires_at)
    with pytest.raises(tokens.InvalidToken):
        tokens.decode_refresh_token(token)


def test_revoking_one_token_leaves_others_valid():
    first, second = (tokens.issue_token_pair(unsaved_user())["access_token"] for _ in range(2))
    claims = tokens.decode_access_token(first)
    tokens.revoke(claims.jti, claims.expires_at)
    assert tokens.decode_access_token(second)


def test_a_revocation_mark_lasts_as_long_as_the_token(monkeypatch):
    timeouts = []
    monkeypatch.setattr(tokens.cache, "set", lambda key, value, timeout: timeouts.append(timeout))
    tokens.revoke("some-jti", datetime.now(UTC) + timedelta(minutes=10))
    assert 600 <= timeouts[0] <= 600 + tokens.CLOCK_SKEW_SECONDS + 2


def test_revoking_an_expired_token_stores_nothing():
    tokens.revoke("old-jti", datetime.now(UTC) - timedelta(hours=1))
    assert not tokens.is_revoked("old-jti")


def test_an_unknown_jti_is_not_revoked():
    assert not tokens.is_revoked(uuid.uuid4().hex)


@pytest.mark.django_db
def test_verifying_an_access_token_runs_no_database_query(django_assert_num_queries):
    token = hand_made_token(legacy_claims())
    with django_assert_num_queries(0):
        tokens.decode_access_token(token)


# --- hostile claims in validly signed tokens -------------------------------------------------


@pytest.mark.parametrize(
    "exp",
    [
        pytest.param("4102444800", id="a numeric string"),
        pytest.param(" 4102444800", id="a padded string"),
        pytest.param(10**20, id="past the year 9999"),
    ],
)
def test_a_signed_token_whose_exp_is_not_a_number_of_seconds_is_invalid(exp):
    token = jwt.encode(legacy_claims(exp=exp), settings.JWT_SECRET, algorithm="HS256")
    with pytest.raises(tokens.InvalidToken, match=r"^Invalid token$"):
        tokens.decode_access_token(token)


@pytest.mark.parametrize("family", [42, "", ["a"]])
def test_a_signed_token_whose_family_is_not_a_string_is_invalid(family):
    with pytest.raises(tokens.InvalidToken, match=r"^Invalid token$"):
        tokens.decode_access_token(hand_made_token(legacy_claims(fam=family)))


# --- refresh token families ------------------------------------------------------------------


def test_both_tokens_of_a_pair_name_the_same_new_family():
    first, second = tokens.issue_token_pair(unsaved_user()), tokens.issue_token_pair(unsaved_user())
    assert raw_claims(first["access_token"])["fam"] == raw_claims(first["refresh_token"])["fam"]
    assert raw_claims(first["refresh_token"])["fam"] != raw_claims(second["refresh_token"])["fam"]


def test_a_legacy_refresh_token_without_family_is_its_own_family():
    claims = tokens.decode_refresh_token(hand_made_token(legacy_claims(type="refresh")))
    assert claims.family == claims.jti


def test_revoking_a_family_refuses_its_access_and_refresh_tokens_only():
    pair, other = tokens.issue_token_pair(unsaved_user()), tokens.issue_token_pair(unsaved_user())
    tokens.family_revoke(tokens.decode_refresh_token(pair["refresh_token"]).family)
    with pytest.raises(tokens.TokenRevoked):
        tokens.decode_access_token(pair["access_token"])
    with pytest.raises(tokens.TokenRevoked):
        tokens.decode_refresh_token(pair["refresh_token"])
    assert tokens.decode_access_token(other["access_token"])


def test_spending_a_refresh_token_twice_revokes_its_family():
    pair = tokens.issue_token_pair(unsaved_user())
    claims = tokens.decode_refresh_token(pair["refresh_token"])
    tokens.refresh_token_spend(claims)
    with pytest.raises(tokens.RefreshTokenReused):
        tokens.refresh_token_spend(claims)
    with pytest.raises(tokens.TokenRevoked):
        tokens.decode_access_token(pair["access_token"])
