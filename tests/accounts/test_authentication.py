"""JWTAuthentication: who the bearer token says the caller is, without loading a user row."""

import uuid

import pytest
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.test import APIRequestFactory

from accounts.authentication import JWTAuthentication, TokenUser
from accounts.models import User
from accounts.tokens import AccessClaims, issue_token_pair
from tests.support.api import hand_made_token, legacy_claims

pytestmark = pytest.mark.portable
factory = APIRequestFactory()


def authenticate(authorization: str | None):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    return JWTAuthentication().authenticate(factory.get("/v1/users/me", **headers))


def test_a_bearer_token_authenticates_a_token_user():
    user_id = uuid.uuid4()
    claims = legacy_claims(user_id=str(user_id), sub=str(user_id), email="eve@example.test", username="eve")
    user, auth = authenticate(f"Bearer {hand_made_token(claims)}")
    assert isinstance(user, TokenUser)
    assert (user.id, user.pk, user.email, user.username, user.role) == (
        user_id,
        user_id,
        "eve@example.test",
        "eve",
        "user",
    )
    assert isinstance(auth, AccessClaims)
    assert user.claims == auth


def test_the_token_user_is_authenticated_and_not_a_model_instance():
    user, _ = authenticate(f"Bearer {hand_made_token(legacy_claims())}")
    assert user.is_authenticated is True
    assert user.is_anonymous is False
    assert not isinstance(user, User)


def test_the_admin_role_makes_a_staff_token_user():
    user, _ = authenticate(f"Bearer {hand_made_token(legacy_claims(role='admin'))}")
    assert user.is_staff is True


def test_the_user_role_is_not_staff():
    user, _ = authenticate(f"Bearer {hand_made_token(legacy_claims(role='user'))}")
    assert user.is_staff is False


def test_the_scheme_is_case_insensitive():
    assert authenticate(f"bearer {hand_made_token(legacy_claims())}") is not None


def test_no_authorization_header_is_anonymous():
    assert authenticate(None) is None


def test_another_scheme_is_left_to_other_authenticators():
    assert authenticate("Basic dXNlcjpwYXNz") is None


@pytest.mark.parametrize("header", ["Bearer", "Bearer two parts"])
def test_a_malformed_bearer_header_is_refused(header):
    with pytest.raises(AuthenticationFailed):
        authenticate(header)


def test_an_invalid_token_is_refused_with_the_token_message():
    with pytest.raises(AuthenticationFailed, match="Invalid token"):
        authenticate("Bearer not-a-jwt")


def test_an_expired_token_is_refused_saying_so():
    with pytest.raises(AuthenticationFailed, match="Token has expired"):
        authenticate(f"Bearer {hand_made_token(legacy_claims(exp=1_000_000, iat=999_000))}")


def test_a_refresh_token_does_not_authenticate():
    refresh = issue_token_pair(User(id=uuid.uuid4(), email="a@example.test", username="abc"))["refresh_token"]
    with pytest.raises(AuthenticationFailed):
        authenticate(f"Bearer {refresh}")


def test_the_challenge_is_bearer_so_drf_answers_401():
    assert JWTAuthentication().authenticate_header(factory.get("/")) == "Bearer"


@pytest.mark.django_db
def test_authenticating_a_request_runs_no_database_query(django_assert_num_queries):
    header = f"Bearer {hand_made_token(legacy_claims())}"
    with django_assert_num_queries(0):
        authenticate(header)
