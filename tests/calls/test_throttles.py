"""Call initiation is rate limited per caller (``calls.api.throttles.CallInitiateThrottle``)."""

import pytest
from django.test import override_settings
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from calls.api.throttles import CallInitiateThrottle
from tests.factories import make_user
from tests.support.api import throttle_rates

pytestmark = [pytest.mark.django_db, pytest.mark.portable]


class InitiateApi(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [CallInitiateThrottle]

    def post(self, request):
        return Response({"ok": True})


def initiate(user):
    request = APIRequestFactory().post("/v1/calls/initiate", {}, format="json")
    force_authenticate(request, user=user)
    return InitiateApi.as_view()(request)


def test_call_initiation_defaults_to_ten_a_minute():
    assert CallInitiateThrottle().rate == "10/min"


def test_call_initiation_is_limited_per_caller(clock):
    caller, other = make_user(), make_user()
    with override_settings(REST_FRAMEWORK=throttle_rates(call_initiate="3/min")):
        statuses = [initiate(caller).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        assert initiate(other).status_code == 200
