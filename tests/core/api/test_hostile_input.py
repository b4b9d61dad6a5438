"""Hostile bodies that used to reach a 500: JSON nested deeper than the parser can go, lone
surrogates, and invisible control characters in text that other people see."""

import pytest

from accounts.models import User
from accounts.tokens import issue_token_pair
from calls.models import Conversation
from tests.factories import api_client_for, make_user
from tests.support.api import bearer

pytestmark = [pytest.mark.django_db, pytest.mark.portable]

DEEP = 30_000


def post_raw(client, path, body: str, **kwargs):
    return client.post(path, data=body.encode("utf-8"), content_type="application/json", **kwargs)


def assert_validation_error(response, field=None):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "VALIDATION_ERROR"
    if field is not None:
        assert field in body["error"]["details"], body["error"]["details"]
    return body["error"]


# --- nesting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/auth/login", "/v1/auth/register", "/v1/auth/refresh"])
@pytest.mark.parametrize(
    ("opening", "closing", "depth"),
    [("[", "]", DEEP), ('{"a":', "}", 10_000)],  # objects: 10,000 deep stays under the body cap
)
def test_json_nested_thirty_thousand_deep_is_a_validation_error_anonymously(client, path, opening, closing, depth):
    response = post_raw(client, path, opening * depth + "1" + closing * depth)
    error = assert_validation_error(response, "body")
    assert "nested too deeply" in error["details"]["body"][0]


@pytest.mark.parametrize("path", ["/v1/conversations", "/v1/calls/initiate", "/v1/auth/logout", "/v1/devices"])
def test_json_nested_thirty_thousand_deep_is_a_validation_error_signed_in(path):
    client = api_client_for(make_user())
    response = client.post(path, data="[" * DEEP + "]" * DEEP, content_type="application/json")
    assert_validation_error(response, "body")


# --- lone surrogates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email", [r"\ud800", r"kristis@example.te\udfffst", r"\udc00kristis@example.test", r"a@\ud83d.test"]
)
def test_a_lone_surrogate_in_the_login_email_is_a_validation_error(client, email):
    response = post_raw(client, "/v1/auth/login", f'{{"email": "{email}", "password": "whatever"}}')
    assert_validation_error(response, "body")


def test_a_lone_surrogate_in_a_registration_is_a_validation_error(client):
    body = r'{"email": "a@b.test", "username": "surrogate", "password": "a-long-unusual-passphrase", '
    body += r'"display_name": "x\ud800"}'
    assert_validation_error(post_raw(client, "/v1/auth/register", body), "body")
    assert not User.objects.filter(username="surrogate").exists()
    paired = post_raw(client, "/v1/auth/register", body.replace(r"x\ud800", r"\ud83d\ude00"))  # one emoji
    assert paired.status_code == 201
    assert paired.json()["data"]["display_name"] == "\U0001f600"


# --- control and bidirectional-formatting characters ------------------------------------------

REFUSED = [
    pytest.param("invoice\u202egnp.exe", id="right-to-left override U+202E"),
    pytest.param("\u202aembedded", id="left-to-right embedding U+202A"),
    pytest.param("a\u202db", id="left-to-right override U+202D"),
    pytest.param("a\u2066isolated\u2069", id="isolates U+2066 U+2069"),
    pytest.param("a\u2067b", id="right-to-left isolate U+2067"),
    pytest.param("a\u2068b", id="first strong isolate U+2068"),
    pytest.param("a\u200fb", id="right-to-left mark U+200F"),
    pytest.param("zero\u200bwidth", id="zero-width space U+200B"),
    pytest.param("bell\u0007", id="bell U+0007"),
    pytest.param("two\nlines", id="newline"),
    pytest.param("esc\u001b[31m", id="escape U+001B"),
    pytest.param("del\u007f", id="delete U+007F"),
    pytest.param("c1\u0085c1", id="next line U+0085"),
    pytest.param("line\u2028sep", id="line separator U+2028"),
    pytest.param("bom\ufeff", id="byte order mark U+FEFF"),
]
ALLOWED = [
    "Grace Hopper",
    "\u05e9\u05dc\u05d5\u05dd world",  # right-to-left letters
    "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian with a zero-width non-joiner
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # an emoji family joined by zero-width joiners
]


@pytest.mark.parametrize("title", REFUSED)
def test_a_conversation_title_with_control_characters_is_refused_and_letters_of_any_script_kept(title):
    me, peer = make_user(), make_user()
    client = api_client_for(me)

    def create(text):
        body = {"type": "group", "title": text, "member_ids": [str(peer.id)]}
        return client.post("/v1/conversations", body, format="json")

    error = assert_validation_error(create(title), "title")
    assert "U+" in error["details"]["title"][0]
    assert not Conversation.objects.exists()
    for text in ALLOWED:
        response = create(text)
        assert response.status_code == 201, text
        assert response.json()["data"]["title"] == text


@pytest.mark.parametrize("display_name", REFUSED)
def test_a_display_name_with_control_characters_is_refused_and_letters_of_any_script_kept(client, display_name):
    def register(n, text):
        body = {
            "email": f"bidi{n}@example.test",
            "username": f"bidi_user{n}",
            "password": "a-long-unusual-passphrase",
            "display_name": text,
        }
        return client.post("/v1/auth/register", body, content_type="application/json")

    assert_validation_error(register(0, display_name), "display_name")
    assert not User.objects.filter(username="bidi_user0").exists()
    for n, text in enumerate(ALLOWED, start=1):
        response = register(n, text)
        assert response.status_code == 201, text
        assert response.json()["data"]["display_name"] == text


def test_an_email_with_a_right_to_left_override_is_refused(client):
    body = {"email": "kristis@exa\u202eelpmam.test", "username": "bidi_mail", "password": "a-long-unusual-passphrase"}
    response = client.post("/v1/auth/register", body, content_type="application/json")
    assert_validation_error(response, "email")


def test_logout_with_a_deep_body_is_refused_and_revokes_nothing(client):
    pair = issue_token_pair(make_user())
    response = post_raw(client, "/v1/auth/logout", "[" * DEEP + "]" * DEEP, headers=bearer(pair["access_token"]))
    assert_validation_error(response, "body")
    assert client.get("/v1/users/me", headers=bearer(pair["access_token"])).status_code == 200
