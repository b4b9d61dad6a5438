"""The envelope of API v1: every answer under /v1, success or error, whoever produced it."""

import json
from datetime import datetime

import pytest

from tests.factories import make_user
from tests.support.api import bearer, post_json

pytestmark = [pytest.mark.urls("tests.core.api.urls"), pytest.mark.portable]


def assert_meta(meta: dict) -> None:
    assert datetime.fromisoformat(meta["timestamp"].replace("Z", "+00:00")).utcoffset().total_seconds() == 0
    assert meta["timestamp"].endswith("Z")
    assert meta["request_id"]


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"success", "error", "meta"}
    assert body["success"] is False
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    assert_meta(body["meta"])
    return body["error"]


# --- success --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_success_wraps_the_payload_in_data_with_meta(client):
    from accounts.tokens import issue_token_pair

    user = make_user()
    response = client.get("/v1/users/me", headers=bearer(issue_token_pair(user)["access_token"]))
    body = response.json()
    assert set(body) == {"success", "data", "meta"}
    assert body["success"] is True
    assert body["data"]["user_id"] == str(user.id)
    assert set(body["meta"]) == {"timestamp", "request_id"}
    assert_meta(body["meta"])


def test_a_deferred_write_is_marked_in_meta_and_keeps_its_header(client):
    response = post_json(client, "/v1/test/deferred")
    assert response.status_code == 201
    assert response.json()["meta"]["persistence"] == "deferred"
    assert response["X-Persistence"] == "deferred"
    assert response.json()["data"] == {"call_id": "c1"}


def test_a_committed_write_has_no_persistence_marker(client):
    assert "persistence" not in post_json(client, "/v1/test/echo", {"a": 1}).json()["meta"]


def test_the_answer_is_json_whatever_the_client_accepts(client):
    response = post_json(client, "/v1/test/echo", {"a": 1}, headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    "accept",
    [None, "", "*/*", "application/json", "application/json; indent=2", "text/html", "application/*, text/plain"],
)
@pytest.mark.parametrize("query", ["", "?format=json", "?format=xml"])
def test_the_renderer_chosen_is_the_one_drf_chooses_whatever_the_accept_header(rf, accept, query):
    """``FallbackContentNegotiation`` answers the plain cases without parsing the header: the same
    choice as DRF's own negotiation (with its 406 and 404 turned into JSON)."""
    from django.http import Http404
    from rest_framework.exceptions import NotAcceptable
    from rest_framework.negotiation import DefaultContentNegotiation
    from rest_framework.request import Request

    from core.api.renderers import EnvelopeJSONRenderer, FallbackContentNegotiation

    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(rf.get(f"/v1/test/echo{query}", **headers))
    renderers = [EnvelopeJSONRenderer()]
    try:
        expected = DefaultContentNegotiation().select_renderer(request, renderers)
    except NotAcceptable:
        expected = (renderers[0], renderers[0].media_type)
    except Http404:
        expected = Http404
    if expected is Http404:
        with pytest.raises(Http404):
            FallbackContentNegotiation().select_renderer(request, renderers)
    else:
        assert FallbackContentNegotiation().select_renderer(request, renderers) == expected


def test_keys_stay_snake_case(client):
    response = post_json(client, "/v1/test/echo", {"snake_case_key": 1})
    assert response.json()["data"]["received"] == {"snake_case_key": 1}


# --- errors Django produces -----------------------------------------------------------------


def test_an_unknown_v1_path_is_a_not_found_envelope(client):
    assert_error(client.get("/v1/no-such-thing"), 404, "NOT_FOUND")


def test_an_unknown_v1_path_is_a_not_found_envelope_in_debug_mode_too(client, settings):
    settings.DEBUG = True
    assert_error(client.get("/v1/no-such-thing"), 404, "NOT_FOUND")


def test_an_unknown_path_outside_the_api_keeps_djangos_page(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_a_wrong_method_is_method_not_allowed_with_allow(client):
    response = client.get("/v1/auth/login")
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert "POST" in response["Allow"]


def test_a_wrong_method_on_a_plain_django_view_is_enveloped_too(client):
    response = client.post("/v1/test/plain-get-only")
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert response["Allow"] == "GET"


def test_an_oversized_body_is_payload_too_large(client):
    body = json.dumps({"email": "a@example.test", "password": "x" * 70_000})
    error = assert_error(post_json(client, "/v1/auth/login", body), 413, "PAYLOAD_TOO_LARGE")
    assert error["details"] == {"max_bytes": 64 * 1024}


def test_the_body_limit_follows_the_setting(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    assert post_json(client, "/v1/test/echo", {"text": "x" * 1500}).status_code == 200
    assert_error(post_json(client, "/v1/test/echo", {"text": "x" * 2500}), 413, "PAYLOAD_TOO_LARGE")


def test_an_unhandled_exception_is_an_internal_error_without_traceback(client, caplog):
    response = client.get("/v1/test/boom")
    error = assert_error(response, 500, "INTERNAL_ERROR")
    text = response.content.decode()
    assert "hunter2" not in text
    assert "Traceback" not in text
    assert "RuntimeError" not in text
    assert error["details"] == {}
    assert any(record.exc_info and "hunter2" in str(record.exc_info[1]) for record in caplog.records)


def test_an_exception_in_a_plain_django_view_is_an_internal_error_envelope(client):
    client.raise_request_exception = False
    response = client.get("/v1/test/plain-boom")
    assert_error(response, 500, "INTERNAL_ERROR")
    assert "secret in a plain view" not in response.content.decode()


# --- errors of the request body -------------------------------------------------------------


def test_malformed_json_is_a_validation_error_about_the_body(client):
    error = assert_error(post_json(client, "/v1/auth/login", '{"email": "a@b.test",'), 400, "VALIDATION_ERROR")
    assert "body" in error["details"]


def test_a_json_list_instead_of_an_object_is_a_validation_error(client):
    error = assert_error(post_json(client, "/v1/auth/refresh", "[1, 2]"), 400, "VALIDATION_ERROR")
    assert "non_field_errors" in error["details"]


def test_a_form_encoded_body_is_a_validation_error(client):
    response = client.post("/v1/auth/refresh", {"refresh_token": "x"})
    assert_error(response, 400, "VALIDATION_ERROR")


def test_a_wrong_type_names_the_field(client):
    error = assert_error(post_json(client, "/v1/auth/refresh", {"refresh_token": {"x": 1}}), 400, "VALIDATION_ERROR")
    assert list(error["details"]) == ["refresh_token"]


# --- errors of the domain -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("call_not_found", 404, "NOT_FOUND"),
        ("not_a_participant", 403, "FORBIDDEN"),
        ("invalid_call_request", 400, "VALIDATION_ERROR"),
        ("invalid_transition", 409, "CONFLICT"),
        ("persistence_unavailable", 503, "PERSISTENCE_UNAVAILABLE"),
    ],
)
def test_call_errors_map_to_their_code_and_status(client, name, status, code):
    assert_error(client.get(f"/v1/test/domain/{name}"), status, code)


def test_a_call_error_keeps_its_message_and_details(client):
    error = assert_error(client.get("/v1/test/domain/invalid_call_request"), 400, "VALIDATION_ERROR")
    assert error["message"] == "The call request is invalid."
    assert error["details"] == {"callee_ids": ["Pick someone."]}


def test_persistence_unavailable_says_when_to_retry(client):
    response = client.get("/v1/test/domain/persistence_unavailable")
    assert response["Retry-After"] == "7"


def test_a_django_validation_error_from_a_service_is_a_validation_error(client):
    error = assert_error(client.get("/v1/test/django-validation"), 400, "VALIDATION_ERROR")
    assert error["details"] == {"starts_at": ["Must be in the future."]}


def test_an_error_payload_a_view_returns_by_hand_is_enveloped(client):
    error = assert_error(client.get("/v1/test/hand-made-error"), 409, "CONFLICT")
    assert error["details"] == {"reason": "made by hand"}
