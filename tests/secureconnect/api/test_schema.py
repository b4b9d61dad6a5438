"""The OpenAPI schema at /v1/schema: valid OpenAPI 3, and true to what the endpoints answer."""

import uuid

import pytest
from django.core.management import call_command
from django.test import Client
from drf_spectacular.drainage import GENERATOR_STATS
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from tests.factories import DEFAULT_PASSWORD, make_user
from tests.support.api import bearer, post_json

pytestmark = pytest.mark.portable
HTTP_METHODS = ("get", "put", "post", "patch", "delete")


@pytest.fixture(scope="module")
def spec():
    response = Client().get("/v1/schema", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def operations(spec):
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


def assert_matches_schema(spec, path: str, method: str, response) -> None:
    documented = spec["paths"][path][method]["responses"]
    assert str(response.status_code) in documented, f"{method.upper()} {path} {response.status_code} undocumented"
    schema = documented[str(response.status_code)]["content"]["application/json"]["schema"]
    OAS30Validator({**schema, "components": spec["components"]}).validate(response.json())


def test_the_schema_is_valid_openapi_3(spec):
    assert spec["openapi"].startswith("3.")
    validate(spec)


def test_the_schema_generates_without_warnings(tmp_path):
    """A warning means a view drf-spectacular had to guess about (and left out, or half out)."""
    GENERATOR_STATS.reset()
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(tmp_path / "schema.yaml"))


def test_the_schema_is_served_as_yaml_by_default(client):
    response = client.get("/v1/schema")
    assert response.status_code == 200
    assert b"openapi:" in response.content


def test_the_docs_page_loads(client):
    response = client.get("/v1/docs")
    assert response.status_code == 200
    # The page's set-up script (a file of its own, for the page's CSP) points Swagger UI at the schema.
    assert b"/v1/schema" in client.get("/v1/docs?script=").content


def test_every_documented_success_body_is_the_success_envelope(spec):
    for path, method, operation in operations(spec):
        for status, response in operation["responses"].items():
            if status.startswith("2") and status != "204":
                schema = response["content"]["application/json"]["schema"]
                assert schema["required"] == ["success", "data", "meta"], (path, method, status)


def test_every_documented_error_is_the_error_envelope(spec):
    for path, method, operation in operations(spec):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                envelope = response["content"]["application/json"]["schema"]
                assert envelope == {"$ref": "#/components/schemas/ApiErrorEnvelope"}, (path, method, status)


def test_every_authenticated_operation_documents_401_and_429(spec):
    for path, method, operation in operations(spec):
        security = operation.get("security", [])
        if security and {} not in security:
            assert {"401", "429"} <= set(operation["responses"]), (path, method)


def test_operations_with_a_body_document_400_and_413(spec):
    for path, method, operation in operations(spec):
        if "requestBody" in operation:
            assert {"400", "413"} <= set(operation["responses"]), (path, method)


def test_call_and_conversation_ids_in_paths_are_documented_as_uuids(spec):
    """The views answer 400 for an id that is not a UUID, so the schema must not promise any string."""
    ids = {
        (path, method): parameter["schema"]
        for path, method, operation in operations(spec)
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path" and parameter["name"] in ("call_id", "conversation_id")
    }
    assert len(ids) == 6
    assert all(schema == {"type": "string", "format": "uuid"} for schema in ids.values()), ids


def test_throttled_responses_document_retry_after(spec):
    login_429 = spec["paths"]["/v1/auth/login"]["post"]["responses"]["429"]
    assert "Retry-After" in login_429["headers"]


def test_the_accounts_endpoints_use_bearer_auth_where_needed(spec):
    assert spec["paths"]["/v1/users/me"]["get"]["security"] == [{"bearerAuth": []}]
    assert spec["paths"]["/v1/auth/logout"]["post"]["security"] == [{"bearerAuth": []}]
    assert spec["paths"]["/v1/auth/login"]["post"]["security"] == [{}]


@pytest.mark.django_db
def test_real_answers_of_the_accounts_endpoints_match_the_schema(client, spec):
    body = {"email": "s@example.test", "username": "schema_user", "password": "a-long-unusual-passphrase"}
    register = post_json(client, "/v1/auth/register", body)
    assert_matches_schema(spec, "/v1/auth/register", "post", register)
    assert_matches_schema(spec, "/v1/auth/register", "post", post_json(client, "/v1/auth/register", body))
    assert_matches_schema(spec, "/v1/auth/register", "post", post_json(client, "/v1/auth/register", {}))

    login = post_json(client, "/v1/auth/login", {"email": body["email"], "password": body["password"]})
    assert_matches_schema(spec, "/v1/auth/login", "post", login)
    wrong = post_json(client, "/v1/auth/login", {"email": body["email"], "password": "nope"})
    assert_matches_schema(spec, "/v1/auth/login", "post", wrong)
    tokens = login.json()["data"]

    refresh = post_json(client, "/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert_matches_schema(spec, "/v1/auth/refresh", "post", refresh)
    bad_refresh = post_json(client, "/v1/auth/refresh", {"refresh_token": "bad"})
    assert_matches_schema(spec, "/v1/auth/refresh", "post", bad_refresh)

    assert_matches_schema(
        spec, "/v1/users/me", "get", client.get("/v1/users/me", headers=bearer(tokens["access_token"]))
    )
    assert_matches_schema(spec, "/v1/users/me", "get", client.get("/v1/users/me"))

    logout = post_json(
        client, "/v1/auth/logout", {"refresh_token": tokens["refresh_token"]}, headers=bearer(tokens["access_token"])
    )
    assert_matches_schema(spec, "/v1/auth/logout", "post", logout)


@pytest.mark.django_db
def test_a_user_with_an_avatar_matches_the_schema(client, spec):
    user = make_user(avatar_url="https://cdn.example.test/a.png", display_name="A")
    login = post_json(client, "/v1/auth/login", {"email": user.email, "password": DEFAULT_PASSWORD})
    response = client.get("/v1/users/me", headers=bearer(login.json()["data"]["access_token"]))
    assert_matches_schema(spec, "/v1/users/me", "get", response)


@pytest.mark.django_db
def test_a_rate_limited_answer_matches_the_schema(client, spec):
    for n in range(6):
        response = post_json(client, "/v1/auth/login", {"email": f"n{n}@example.test", "password": "x"})
    assert response.status_code == 429
    assert_matches_schema(spec, "/v1/auth/login", "post", response)


@pytest.mark.django_db
def test_starting_a_call_in_an_unknown_conversation_answers_a_documented_404(client, spec):
    caller = make_user()
    login = post_json(client, "/v1/auth/login", {"email": caller.email, "password": DEFAULT_PASSWORD})
    body = {"call_type": "audio", "conversation_id": str(uuid.uuid4()), "callee_ids": [str(uuid.uuid4())]}
    response = post_json(client, "/v1/calls/initiate", body, headers=bearer(login.json()["data"]["access_token"]))
    assert response.status_code == 404
    assert_matches_schema(spec, "/v1/calls/initiate", "post", response)


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


def test_a_browser_gets_the_schema_as_a_page_it_shows_not_a_download(client):
    response = client.get("/v1/schema", HTTP_ACCEPT=BROWSER_ACCEPT)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "<pre>openapi: 3.0.3" in page and "/v1/conversations:" in page
    assert "<script" not in page.replace("&lt;script", ""), "the YAML is escaped"


@pytest.mark.parametrize(
    ("accept", "query", "media_type"),
    [
        ("*/*", {}, "application/vnd.oai.openapi"),
        ("application/vnd.oai.openapi+json", {}, "application/vnd.oai.openapi+json"),
        (BROWSER_ACCEPT, {"format": "json"}, "application/vnd.oai.openapi+json"),
    ],
)
def test_tools_still_get_yaml_or_json(client, accept, query, media_type):
    response = client.get("/v1/schema", query, HTTP_ACCEPT=accept)
    assert response.status_code == 200 and response["Content-Type"].split(";")[0] == media_type
