"""Finding someone to talk to by exact email or username, without leaking emails."""

import pytest

from tests.factories import api_client_for, make_user

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("query", ["Grace.Hopper@Example.test", "GRACE_H", " grace_h "])
def test_lookup_by_exact_email_or_username_case_insensitive(query):
    grace = make_user(username="grace_h", email="grace.hopper@example.test", display_name="Grace")
    response = api_client_for(make_user()).get("/v1/users/lookup", {"q": query})
    assert response.status_code == 200
    assert response.json()["data"] == {"user_id": str(grace.id), "username": "grace_h", "display_name": "Grace"}


def test_lookup_never_matches_partially_and_says_not_found():
    make_user(username="grace_h")
    response = api_client_for(make_user()).get("/v1/users/lookup", {"q": "grace"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "NOT_FOUND"


def test_lookup_skips_disabled_accounts():
    make_user(username="gone_user", is_active=False)
    assert api_client_for(make_user()).get("/v1/users/lookup", {"q": "gone_user"}).status_code == 404


def test_lookup_needs_a_token_and_a_query():
    from rest_framework.test import APIClient

    assert APIClient().get("/v1/users/lookup", {"q": "someone"}).status_code == 401
    response = api_client_for(make_user()).get("/v1/users/lookup")
    assert response.status_code == 400 and "q" in response.json()["error"]["details"]


def test_lookup_is_rate_limited(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "user_lookup": "2/min"},
    }
    client = api_client_for(make_user())
    codes = [client.get("/v1/users/lookup", {"q": f"nobody{i}"}).status_code for i in range(3)]
    assert codes == [404, 404, 429]
