"""core's exception handler knows no app: any ApplicationError becomes its code, status,
message, details and headers."""

import pytest

from core.api.exception_handler import api_exception_handler
from core.exceptions import ApplicationError

pytestmark = pytest.mark.portable


class OutOfTea(ApplicationError):
    code = "CONFLICT"
    default_message = "No tea left."


def test_an_application_error_of_any_app_maps_to_its_envelope_and_headers():
    error = OutOfTea(details={"pot": ["empty"]}, headers={"Retry-After": "7"})
    response = api_exception_handler(error, {})
    assert response.status_code == 409
    assert response.data == {"code": "CONFLICT", "message": "No tea left.", "details": {"pot": ["empty"]}}
    assert response["Retry-After"] == "7"


def test_an_unauthorized_application_error_carries_the_bearer_challenge():
    class Expired(ApplicationError):
        code = "UNAUTHORIZED"

    response = api_exception_handler(Expired("Token has expired"), {})
    assert response.status_code == 401
    assert response.data["message"] == "Token has expired"
    assert response["WWW-Authenticate"] == "Bearer"
