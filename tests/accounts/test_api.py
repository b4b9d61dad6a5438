"""The accounts endpoints: /v1/auth/register, login, refresh, logout and /v1/users/me."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from accounts import tokens
from accounts.models import User
from tests.factories import DEFAULT_PASSWORD, make_user
from tests.support.api import bearer, hand_made_token, legacy_claims, post_json

pytestmark = [pytest.mark.django_db, pytest.mark.portable]

REGISTER = "/v1/auth/register"
LOGIN = "/v1/auth/login"
REFRESH = "/v1/auth/refresh"
LOGOUT = "/v1/auth/logout"
ME = "/v1/users/me"
USER_KEYS = {"user_id", "email", "username", "display_name", "avatar_url", "created_at"}


def registration(**overrides) -> dict:
    body = {
        "email": "grace@example.test",
        "username": "grace_h",
        "password": "a-long-unusual-passphrase",
        "display_name": "Grace Hopper",
    }
    return {**body, **overrides}


def login(client, user, password=DEFAULT_PASSWORD) -> dict:
    response = post_json(client, LOGIN, {"email": user.email, "password": password})
    assert response.status_code == 200, response.json()
    return response.json()["data"]


def error_of(response) -> dict:
    body = response.json()
    assert body["success"] is False
    return body["error"]


# --- register -------------------------------------------------------------------------------


def test_register_creates_the_account_and_answers_the_user(client):
    response = post_json(client, REGISTER, registration())
    assert response.status_code == 201
    data = response.json()["data"]
    assert set(data) == USER_KEYS
    assert (data["email"], data["username"], data["display_name"], data["avatar_url"]) == (
        "grace@example.test",
        "grace_h",
        "Grace Hopper",
        None,
    )
    assert User.objects.get(pk=data["user_id"]).check_password("a-long-unusual-passphrase")


def test_register_never_answers_the_password(client):
    response = post_json(client, REGISTER, registration())
    assert "a-long-unusual-passphrase" not in response.content.decode()


def test_register_display_name_is_optional(client):
    body = registration()
    del body["display_name"]
    assert post_json(client, REGISTER, body).json()["data"]["display_name"] == ""


def test_register_ignores_unknown_fields(client):
    response = post_json(client, REGISTER, registration(is_staff=True, role="admin"))
    assert response.status_code == 201
    assert User.objects.get(username="grace_h").is_staff is False


def test_register_with_a_taken_email_is_a_conflict(client):
    make_user(email="grace@example.test")
    response = post_json(client, REGISTER, registration())
    assert response.status_code == 409
    assert error_of(response)["code"] == "CONFLICT"
    assert set(error_of(response)["details"]) == {"email"}


def test_register_with_a_taken_username_in_other_case_is_a_conflict(client):
    make_user(username="Grace_H")
    response = post_json(client, REGISTER, registration())
    assert response.status_code == 409
    assert set(error_of(response)["details"]) == {"username"}


def test_register_with_a_common_password_is_a_validation_error(client):
    response = post_json(client, REGISTER, registration(password="password"))
    assert response.status_code == 400
    assert error_of(response)["code"] == "VALIDATION_ERROR"
    assert error_of(response)["details"]["password"]


def test_register_with_a_password_like_the_username_is_refused(client):
    response = post_json(client, REGISTER, registration(username="grace_hopper_x", password="grace_hopper_x"))
    assert response.status_code == 400
    assert "password" in error_of(response)["details"]


def test_validation_comes_before_conflict(client):
    make_user(email="grace@example.test")
    response = post_json(client, REGISTER, registration(password="123"))
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("username", "reason"),
    [("ab", "too short"), ("a" * 31, "too long"), ("grace hopper", "space"), ("grace@h", "at sign")],
)
def test_register_refuses_a_bad_username(client, username, reason):
    response = post_json(client, REGISTER, registration(username=username))
    assert response.status_code == 400, reason
    assert "username" in error_of(response)["details"]


def test_register_accepts_dots_dashes_and_underscores_in_usernames(client):
    assert post_json(client, REGISTER, registration(username="g.race-h_1")).status_code == 201


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "not-an-email"),
        ("email", 12345),
        ("password", ["a", "list"]),
        ("display_name", "x" * 101),
        ("password", "p" * 10_000),
    ],
)
def test_register_refuses_wrong_types_and_huge_strings_naming_the_field(client, field, value):
    response = post_json(client, REGISTER, registration(**{field: value}))
    assert response.status_code == 400
    assert field in error_of(response)["details"]


def test_register_lists_every_missing_field(client):
    response = post_json(client, REGISTER, {})
    assert set(error_of(response)["details"]) == {"email", "username", "password"}


# --- login ----------------------------------------------------------------------------------


def test_login_answers_the_user_and_a_token_pair(client):
    user = make_user()
    data = login(client, user)
    assert set(data) == {"user", "access_token", "refresh_token"}
    assert data["user"]["user_id"] == str(user.id)
    assert tokens.decode_access_token(data["access_token"]).user_id == user.id
    assert tokens.decode_refresh_token(data["refresh_token"]).user_id == user.id


def test_login_email_is_case_insensitive(client):
    user = make_user(email="mixed.Case@example.test")
    response = post_json(client, LOGIN, {"email": "MIXED.case@EXAMPLE.test", "password": DEFAULT_PASSWORD})
    assert response.status_code == 200
    assert response.json()["data"]["user"]["user_id"] == str(user.id)


def test_login_records_the_last_login(client):
    user = make_user()
    login(client, user)
    user.refresh_from_db()
    assert user.last_login is not None


def test_a_wrong_password_and_an_unknown_email_get_the_same_401(client):
    user = make_user()
    wrong_password = post_json(client, LOGIN, {"email": user.email, "password": "not-the-password"})
    unknown_email = post_json(client, LOGIN, {"email": "nobody@example.test", "password": DEFAULT_PASSWORD})
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert error_of(wrong_password)["code"] == error_of(unknown_email)["code"] == "UNAUTHORIZED"
    assert error_of(wrong_password)["message"] == error_of(unknown_email)["message"]
    assert error_of(wrong_password)["details"] == error_of(unknown_email)["details"] == {}


def test_a_disabled_account_cannot_log_in_and_is_not_told_why(client):
    user = make_user(is_active=False)
    response = post_json(client, LOGIN, {"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 401
    assert error_of(response)["message"] == "Invalid email or password."


def test_login_ignores_a_stale_authorization_header(client):
    user = make_user()
    response = post_json(
        client, LOGIN, {"email": user.email, "password": DEFAULT_PASSWORD}, headers=bearer("expired-garbage")
    )
    assert response.status_code == 200


def test_login_without_a_password_is_a_validation_error(client):
    response = post_json(client, LOGIN, {"email": "someone@example.test"})
    assert response.status_code == 400
    assert "password" in error_of(response)["details"]


# --- refresh --------------------------------------------------------------------------------


def test_refresh_answers_a_new_working_token_pair(client):
    user = make_user()
    pair = login(client, user)
    response = post_json(client, REFRESH, {"refresh_token": pair["refresh_token"]})
    assert response.status_code == 200
    assert set(response.json()["data"]) == {"access_token", "refresh_token"}
    access, refresh = response.json()["data"]["access_token"], response.json()["data"]["refresh_token"]
    assert client.get(ME, headers=bearer(access)).status_code == 200
    assert refresh != pair["refresh_token"]
    assert post_json(client, REFRESH, {"refresh_token": refresh}).status_code == 200


def test_a_stolen_refresh_token_replayed_after_rotation_revokes_the_whole_session(client):
    user = make_user()
    pair = login(client, user)
    stolen = pair["refresh_token"]
    rotated = post_json(client, REFRESH, {"refresh_token": stolen}).json()["data"]
    replay = post_json(client, REFRESH, {"refresh_token": stolen})
    assert replay.status_code == 401
    assert error_of(replay)["code"] == "UNAUTHORIZED"
    assert "already used" in error_of(replay)["message"]
    # Every token of the family is refused from now on, the legitimate owner's included.
    assert post_json(client, REFRESH, {"refresh_token": rotated["refresh_token"]}).status_code == 401
    assert client.get(ME, headers=bearer(rotated["access_token"])).status_code == 401
    assert client.get(ME, headers=bearer(pair["access_token"])).status_code == 401
    # Another session of the same account is untouched.
    other = login(client, user)
    assert client.get(ME, headers=bearer(other["access_token"])).status_code == 200


def test_a_replayed_legacy_refresh_token_revokes_what_it_was_rotated_into(client):
    user = make_user()
    legacy = hand_made_token(legacy_claims(user, type="refresh"))
    rotated = post_json(client, REFRESH, {"refresh_token": legacy}).json()["data"]
    assert client.get(ME, headers=bearer(rotated["access_token"])).status_code == 200
    assert post_json(client, REFRESH, {"refresh_token": legacy}).status_code == 401
    assert client.get(ME, headers=bearer(rotated["access_token"])).status_code == 401


def test_refresh_picks_up_a_changed_username(client):
    user = make_user()
    pair = login(client, user)
    User.objects.filter(pk=user.pk).update(username="renamed")
    access = post_json(client, REFRESH, {"refresh_token": pair["refresh_token"]}).json()["data"]["access_token"]
    assert tokens.decode_access_token(access).username == "renamed"


def test_refresh_with_an_access_token_is_unauthorized(client):
    pair = login(client, make_user())
    response = post_json(client, REFRESH, {"refresh_token": pair["access_token"]})
    assert response.status_code == 401
    assert error_of(response)["code"] == "UNAUTHORIZED"


def test_refresh_with_a_revoked_token_is_unauthorized(client):
    pair = login(client, make_user())
    claims = tokens.decode_refresh_token(pair["refresh_token"])
    tokens.revoke(claims.jti, claims.expires_at)
    assert post_json(client, REFRESH, {"refresh_token": pair["refresh_token"]}).status_code == 401


def test_refresh_with_an_expired_token_says_it_has_expired(client):
    claims = legacy_claims(type="refresh", exp=1_000_000, iat=999_000)
    response = post_json(client, REFRESH, {"refresh_token": hand_made_token(claims)})
    assert response.status_code == 401
    assert error_of(response)["message"] == "Token has expired"


def test_refresh_for_a_disabled_account_is_unauthorized(client):
    user = make_user()
    pair = login(client, user)
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert post_json(client, REFRESH, {"refresh_token": pair["refresh_token"]}).status_code == 401


def test_refresh_without_a_token_is_a_validation_error(client):
    response = post_json(client, REFRESH, {})
    assert response.status_code == 400
    assert "refresh_token" in error_of(response)["details"]


# --- logout ---------------------------------------------------------------------------------


def test_logout_refuses_the_access_token_afterwards(client):
    pair = login(client, make_user())
    response = post_json(client, LOGOUT, {"refresh_token": pair["refresh_token"]}, headers=bearer(pair["access_token"]))
    assert response.status_code == 200
    assert response.json()["data"] is None
    after = client.get(ME, headers=bearer(pair["access_token"]))
    assert after.status_code == 401
    assert error_of(after)["code"] == "UNAUTHORIZED"


def test_logout_refuses_the_refresh_token_afterwards(client):
    pair = login(client, make_user())
    post_json(client, LOGOUT, {"refresh_token": pair["refresh_token"]}, headers=bearer(pair["access_token"]))
    assert post_json(client, REFRESH, {"refresh_token": pair["refresh_token"]}).status_code == 401


def test_logout_with_someone_elses_refresh_token_is_forbidden_and_revokes_nothing(client):
    mine, theirs = login(client, make_user()), login(client, make_user())
    response = post_json(
        client, LOGOUT, {"refresh_token": theirs["refresh_token"]}, headers=bearer(mine["access_token"])
    )
    assert response.status_code == 403
    assert error_of(response)["code"] == "FORBIDDEN"
    assert post_json(client, REFRESH, {"refresh_token": theirs["refresh_token"]}).status_code == 200
    assert client.get(ME, headers=bearer(mine["access_token"])).status_code == 200


def test_logout_with_an_expired_refresh_token_still_revokes_the_access_token(client):
    user = make_user()
    pair = login(client, user)
    expired = hand_made_token(legacy_claims(user, type="refresh", exp=1_000_000, iat=999_000))
    response = post_json(client, LOGOUT, {"refresh_token": expired}, headers=bearer(pair["access_token"]))
    assert response.status_code == 200
    assert client.get(ME, headers=bearer(pair["access_token"])).status_code == 401


def test_logout_with_a_malformed_refresh_token_is_a_validation_error(client):
    pair = login(client, make_user())
    response = post_json(client, LOGOUT, {"refresh_token": "garbage"}, headers=bearer(pair["access_token"]))
    assert response.status_code == 400
    assert "refresh_token" in error_of(response)["details"]


def test_logout_without_a_body_revokes_the_access_token_it_was_called_with(client):
    pair = login(client, make_user())
    response = client.generic("POST", LOGOUT, headers=bearer(pair["access_token"]))  # as curl -X POST
    assert response.status_code == 200
    assert response.json()["data"] is None
    assert client.get(ME, headers=bearer(pair["access_token"])).status_code == 401


def test_logout_with_an_empty_object_ends_the_session_refresh_token_included(client):
    pair = login(client, make_user())
    assert post_json(client, LOGOUT, {}, headers=bearer(pair["access_token"])).status_code == 200
    assert client.get(ME, headers=bearer(pair["access_token"])).status_code == 401
    assert post_json(client, REFRESH, {"refresh_token": pair["refresh_token"]}).status_code == 401


def test_logout_of_a_legacy_access_token_without_a_body_revokes_it(client):
    token = hand_made_token(legacy_claims(make_user()))
    assert client.generic("POST", LOGOUT, headers=bearer(token)).status_code == 200
    assert client.get(ME, headers=bearer(token)).status_code == 401


def test_logout_without_a_token_is_unauthorized_before_the_body_is_checked(client):
    response = post_json(client, LOGOUT, {"unexpected": "body"})
    assert response.status_code == 401


# --- users/me -------------------------------------------------------------------------------


def test_me_answers_my_account(client):
    user = make_user(display_name="Ada", avatar_url="https://cdn.example.test/ada.png")
    response = client.get(ME, headers=bearer(login(client, user)["access_token"]))
    assert response.status_code == 200
    data = response.json()["data"]
    assert set(data) == USER_KEYS
    assert (data["user_id"], data["display_name"], data["avatar_url"]) == (
        str(user.id),
        "Ada",
        "https://cdn.example.test/ada.png",
    )
    created_at = datetime.fromisoformat(data["created_at"].replace("Z", "+00:00"))
    assert abs(created_at - user.created_at) < timedelta(seconds=1)


def test_me_accepts_a_token_of_the_go_auth_service(client):
    user = make_user()
    response = client.get(ME, headers=bearer(hand_made_token(legacy_claims(user))))
    assert response.status_code == 200
    assert response.json()["data"]["user_id"] == str(user.id)


def test_me_without_a_token_is_unauthorized_with_a_bearer_challenge(client):
    response = client.get(ME)
    assert response.status_code == 401
    assert error_of(response)["code"] == "UNAUTHORIZED"
    assert response["WWW-Authenticate"] == "Bearer"


def test_me_with_a_bad_token_is_unauthorized(client):
    response = client.get(ME, headers=bearer("not-a-token"))
    assert response.status_code == 401
    assert error_of(response)["message"] == "Invalid token"


def test_me_with_an_expired_token_says_it_has_expired(client):
    an_hour_ago = int((datetime.now(UTC) - timedelta(hours=1)).timestamp())
    token = hand_made_token(legacy_claims(make_user(), exp=an_hour_ago, iat=an_hour_ago - 900))
    response = client.get(ME, headers=bearer(token))
    assert response.status_code == 401
    assert error_of(response)["message"] == "Token has expired"


def test_me_with_a_validly_signed_token_whose_exp_is_a_string_is_unauthorized(client):
    in_an_hour = str(int((datetime.now(UTC) + timedelta(hours=1)).timestamp()))
    token = hand_made_token(legacy_claims(make_user(), exp=in_an_hour))
    response = client.get(ME, headers=bearer(token))
    assert response.status_code == 401
    assert error_of(response) == {"code": "UNAUTHORIZED", "message": "Invalid token", "details": {}}


def test_me_for_a_deleted_account_is_unauthorized(client):
    token = hand_made_token(legacy_claims(user_id=str(uuid.uuid4()), sub=None))
    assert client.get(ME, headers=bearer(token)).status_code == 401
