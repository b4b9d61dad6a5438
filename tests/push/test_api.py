"""POST/GET /v1/devices and DELETE /v1/devices/{token}, with real JWTs, in the envelope."""

import pytest
from rest_framework.test import APIClient

from push.models import Device
from push.services import device_register
from tests.factories import api_client_for, make_user

pytestmark = [pytest.mark.portable, pytest.mark.django_db]


@pytest.fixture
def user():
    return make_user()


def test_registering_a_device_answers_201_with_the_device(user):
    response = api_client_for(user).post("/v1/devices", {"token": "fid-abc:123", "platform": "android"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True
    device = body["data"]
    assert (device["token"], device["platform"], device["is_active"]) == ("fid-abc:123", "android", True)
    assert set(device) == {"id", "token", "platform", "is_active", "created_at", "last_seen_at"}
    assert Device.objects.get(token="fid-abc:123").user == user


def test_registering_a_known_device_again_answers_200(user):
    client = api_client_for(user)
    client.post("/v1/devices", {"token": "fid-abc", "platform": "ios"}, format="json")

    response = client.post("/v1/devices", {"token": "fid-abc", "platform": "ios"}, format="json")

    assert response.status_code == 200
    assert Device.objects.filter(token="fid-abc").count() == 1


def test_registering_someone_elses_token_moves_it_to_me(user):
    previous_owner = make_user()
    device_register(user_id=previous_owner.id, token="handed-down-phone", platform="android")

    response = api_client_for(user).post(
        "/v1/devices", {"token": "handed-down-phone", "platform": "android"}, format="json"
    )

    assert response.status_code == 200
    assert Device.objects.get(token="handed-down-phone").user == user
    assert api_client_for(previous_owner).get("/v1/devices").json()["data"] == []


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"platform": "android"}, "token"),
        ({"token": "", "platform": "android"}, "token"),
        ({"token": "has a space", "platform": "android"}, "token"),
        ({"token": "a/b", "platform": "android"}, "token"),
        ({"token": "x" * 513, "platform": "android"}, "token"),
        ({"token": "fid-abc"}, "platform"),
        ({"token": "fid-abc", "platform": "windows-phone"}, "platform"),
        ({"token": ["fid-abc"], "platform": "android"}, "token"),
    ],
)
def test_bad_input_is_a_validation_error_naming_the_field(user, payload, field):
    response = api_client_for(user).post("/v1/devices", payload, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["details"]
    assert not Device.objects.exists()


def test_listing_shows_only_my_devices(user):
    device_register(user_id=user.id, token="mine-1", platform="android")
    device_register(user_id=user.id, token="mine-2", platform="web")
    device_register(user_id=make_user().id, token="theirs", platform="ios")

    response = api_client_for(user).get("/v1/devices")

    assert response.status_code == 200
    assert sorted(d["token"] for d in response.json()["data"]) == ["mine-1", "mine-2"]


def test_removing_my_device(user):
    device_register(user_id=user.id, token="fid:to-remove", platform="android")

    response = api_client_for(user).delete("/v1/devices/fid:to-remove")

    assert response.status_code == 204
    assert not Device.objects.filter(token="fid:to-remove").exists()


def test_removing_someone_elses_device_is_not_found_and_leaves_it_alone(user):
    owner = make_user()
    device_register(user_id=owner.id, token="not-yours", platform="ios")

    response = api_client_for(user).delete("/v1/devices/not-yours")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert Device.objects.get(token="not-yours").user == owner


def test_removing_an_unknown_device_is_not_found(user):
    response = api_client_for(user).delete("/v1/devices/never-registered")

    assert response.status_code == 404


@pytest.mark.parametrize("token", ["%00", "fid%00abc", "has%20a%20space", "%E2%80%8B%07"])
def test_removing_a_token_that_could_never_be_registered_is_not_found(user, token):
    response = api_client_for(user).delete(f"/v1/devices/{token}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("method", "path"), [("get", "/v1/devices"), ("post", "/v1/devices"), ("delete", "/v1/devices/x")]
)
def test_devices_need_a_valid_token(method, path):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-jwt")

    assert getattr(APIClient(), method)(path).status_code == 401
    assert getattr(client, method)(path).status_code == 401
