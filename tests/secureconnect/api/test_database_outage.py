"""Endpoints the spool cannot serve answer 503 PERSISTENCE_UNAVAILABLE during an outage, never 500."""

import pytest
from rest_framework.test import APIClient

from accounts.tokens import issue_access_token
from calls.persistence import availability
from tests.factories import DEFAULT_PASSWORD, make_user


def test_login_while_the_database_is_away_is_503_and_opens_the_breaker(db_proxy):
    user = make_user()
    db_proxy.down()
    response = APIClient().post("/v1/auth/login", {"email": user.email, "password": DEFAULT_PASSWORD}, format="json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "PERSISTENCE_UNAVAILABLE"
    assert response.headers["Retry-After"]
    assert availability.current() == availability.LIMITED


@pytest.mark.parametrize("path", ["/v1/users/me", "/v1/conversations", "/v1/devices", "/v1/calls"])
def test_reads_that_need_the_database_are_503_while_it_is_away(db_proxy, path):
    user = make_user()
    client = APIClient()
    token = issue_access_token(user_id=user.id, email=user.email, username=user.username, role="user")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    db_proxy.down()
    response = client.get(path)
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "PERSISTENCE_UNAVAILABLE"
