"""Canonical emails (NFKC, then case folding): look-alike addresses against log-in, registration
and look-up, and the migration that canonicalises the stored ones."""

import importlib
import logging

import pytest
from django.apps import apps

from accounts.emails import canonical_email
from accounts.models import User
from tests.factories import DEFAULT_PASSWORD, api_client_for, make_user
from tests.support.api import post_json

pytestmark = [pytest.mark.django_db, pytest.mark.portable]

LONG_S = "kri\u017ftis@example.test"  # U+017F long s: NFKC makes it s
KELVIN = "\u212aristis@example.test"  # K (Kelvin sign): NFKC makes it K, folding k
DOTLESS_I = "kr\u0131stis@example.test"  # U+0131 dotless i: stays, another address
DOTLESS_I_AND_LONG_S = "kr\u0131\u017ftis@example.test"


def log_in(client, email, password=DEFAULT_PASSWORD):
    return post_json(client, "/v1/auth/login", {"email": email, "password": password})


def register(client, email, username):
    body = {"email": email, "username": username, "password": "a-long-unusual-passphrase"}
    return post_json(client, "/v1/auth/register", body)


@pytest.mark.parametrize(
    ("email", "canonical"),
    [
        (LONG_S, "kristis@example.test"),
        (KELVIN, "kristis@example.test"),
        (" KRISTIS@Example.TEST ", "kristis@example.test"),
        ("stra\u00dfe@example.test", "strasse@example.test"),
        (DOTLESS_I, DOTLESS_I),
        ("\uff4b\uff52\uff49\uff53\uff54\uff49\uff53@example.test", "kristis@example.test"),  # fullwidth
    ],
)
def test_canonical_email_is_nfkc_then_casefold(email, canonical):
    assert canonical_email(email) == canonical


def test_look_alikes_that_are_the_same_address_log_into_it(client):
    user = make_user(email="kristis@example.test")
    for email in [LONG_S, KELVIN, "KRISTIS@EXAMPLE.TEST"]:
        response = log_in(client, email)
        assert response.status_code == 200, email
        assert response.json()["data"]["user"]["user_id"] == str(user.id)


def test_dotless_i_look_alikes_with_the_right_password_do_not_log_into_kristis(client):
    make_user(email="kristis@example.test")
    for email in [DOTLESS_I, DOTLESS_I_AND_LONG_S, "KR\u0130STIS@example.test"]:
        response = log_in(client, email)
        assert response.status_code == 401, email
        assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_registering_look_alikes_of_a_taken_email_is_a_conflict(client):
    make_user(email="kristis@example.test")
    for n, email in enumerate([LONG_S, KELVIN, "Kristis@Example.test"]):
        response = register(client, email, f"copycat{n}")
        assert response.status_code == 409, email
        assert response.json()["error"]["code"] == "CONFLICT"
        assert set(response.json()["error"]["details"]) == {"email"}
    assert User.objects.count() == 1


def test_a_dotless_i_address_is_a_different_account_and_can_be_registered(client):
    kristis = make_user(email="kristis@example.test")
    response = register(client, DOTLESS_I, "krystis")
    assert response.status_code == 201
    assert response.json()["data"]["email"] == DOTLESS_I
    other = User.objects.get(username="krystis")
    assert log_in(client, DOTLESS_I).status_code == 401  # its own password, not kristis's
    assert log_in(client, DOTLESS_I, "a-long-unusual-passphrase").json()["data"]["user"]["user_id"] == str(other.id)
    assert log_in(client, "kristis@example.test").json()["data"]["user"]["user_id"] == str(kristis.id)


def test_registration_stores_the_canonical_form(client):
    response = register(client, KELVIN, "kelvin")
    assert response.json()["data"]["email"] == "kristis@example.test"
    assert User.objects.get(username="kelvin").email == "kristis@example.test"


def test_lookup_by_a_look_alike_email_finds_the_same_address_only():
    kristis = make_user(email="kristis@example.test")
    client = api_client_for(make_user())
    assert client.get("/v1/users/lookup", {"q": LONG_S}).json()["data"]["user_id"] == str(kristis.id)
    assert client.get("/v1/users/lookup", {"q": DOTLESS_I}).status_code == 404


def test_the_admin_backend_finds_accounts_by_canonical_email():
    user = make_user(email="kristis@example.test")
    assert User.objects.get_by_natural_key(KELVIN) == user


# --- the data migration ----------------------------------------------------------------------

canonicalise_emails = importlib.import_module("accounts.migrations.0003_canonical_emails").canonicalise_emails


def stored_as(user, email):
    User.objects.filter(pk=user.pk).update(email=email)  # as rows were before canonical storage


def test_the_migration_canonicalises_stored_emails():
    user = make_user()
    stored_as(user, "Grace.Hopper@EXAMPLE.test")
    canonicalise_emails(apps, None)
    user.refresh_from_db()
    assert user.email == "grace.hopper@example.test"


def test_the_migration_keeps_colliding_rows_and_reports_them(caplog):
    first, second, third = make_user(), make_user(), make_user()
    stored_as(first, "Kristis@example.test")
    stored_as(second, LONG_S)
    stored_as(third, DOTLESS_I)
    with caplog.at_level(logging.WARNING, logger="accounts.migrations"):
        canonicalise_emails(apps, None)
    emails = dict(User.objects.values_list("pk", "email"))
    assert emails[first.pk] == "kristis@example.test"  # the first to join keeps the address
    assert emails[second.pk] == LONG_S  # kept as it was, not merged, not deleted
    assert emails[third.pk] == DOTLESS_I
    assert User.objects.count() == 3
    assert str(second.pk) in caplog.text and str(first.pk) not in caplog.text


def test_the_migration_leaves_the_address_to_the_row_already_canonical():
    older, newer = make_user(), make_user()
    stored_as(older, "KRISTIS@example.test")
    stored_as(newer, "kristis@example.test")
    canonicalise_emails(apps, None)
    assert User.objects.get(pk=newer.pk).email == "kristis@example.test"
    assert User.objects.get(pk=older.pk).email == "KRISTIS@example.test"


def test_an_email_that_nfkc_lengthens_past_the_column_is_a_validation_error_not_a_500(client):
    email = "a@" + "\ufdfa" * 14 + ".test"  # 21 characters; U+FDFA becomes 18 letters in NFKC
    assert len(canonical_email(email)) > 254
    response = register(client, email, "ligature")
    assert response.status_code == 400
    assert "email" in response.json()["error"]["details"]


def test_an_admin_form_cannot_store_a_look_alike_of_a_taken_email():
    """The admin's forms validate the model: clean() stores the canonical form, so uniqueness holds."""
    from django.core.exceptions import ValidationError

    make_user(email="kristis@example.test")
    copycat = User(email=KELVIN, username="copycat")
    copycat.set_unusable_password()
    with pytest.raises(ValidationError) as caught:
        copycat.full_clean()
    assert "email" in caught.value.message_dict
    assert copycat.email == "kristis@example.test"
