"""The password policy: Django's validators, plus variety (not only whitespace, several
different characters)."""

import pytest

from accounts.models import User

pytestmark = [pytest.mark.django_db, pytest.mark.portable]


def register(client, password):
    body = {"email": "pw@example.test", "username": "pw_user", "password": password}
    return client.post("/v1/auth/register", body, content_type="application/json")


@pytest.mark.parametrize(
    "password",
    [
        pytest.param(" " * 10, id="ten spaces"),
        pytest.param("\t \u00a0 \u3000  \n\t  ", id="mixed whitespace"),
        pytest.param("uuuuuuuu1", id="uuuuuuuu1"),
        pytest.param("abababababab", id="two characters repeated"),
        pytest.param("abcdabcdabcd", id="four characters repeated"),
    ],
)
def test_registering_with_a_password_of_little_variety_is_refused(client, password):
    response = register(client, password)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert response.json()["error"]["details"]["password"]
    assert not User.objects.filter(username="pw_user").exists()
