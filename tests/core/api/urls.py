"""The service's URLs plus a few views that misbehave on purpose, for the envelope tests."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse
from django.urls import path
from django.views.decorators.http import require_GET
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from calls import exceptions as call_errors
from core.api.envelope import PERSISTENCE_DEFERRED, PERSISTENCE_HEADER
from core.api.request_id import current_request_id
from secureconnect.urls import handler400, handler403, handler404, handler500, urlpatterns  # noqa: F401

DOMAIN_ERRORS = {
    "call_not_found": call_errors.CallNotFound(),
    "not_a_participant": call_errors.NotAParticipant(),
    "invalid_call_request": call_errors.InvalidCallRequest(details={"callee_ids": ["Pick someone."]}),
    "invalid_transition": call_errors.InvalidTransition(),
    "persistence_unavailable": call_errors.PersistenceUnavailable(retry_after=7),
}


class OpenApi(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]


class BoomApi(OpenApi):
    def get(self, request):
        raise RuntimeError("database password is hunter2")


class DomainErrorApi(OpenApi):
    def get(self, request, name):
        raise DOMAIN_ERRORS[name]


class DjangoValidationErrorApi(OpenApi):
    def get(self, request):
        raise DjangoValidationError({"starts_at": ["Must be in the future."]})


class DeferredWriteApi(OpenApi):
    def post(self, request):
        response = Response({"call_id": "c1"}, status=201)
        response[PERSISTENCE_HEADER] = PERSISTENCE_DEFERRED
        return response


class EchoApi(OpenApi):
    def post(self, request):
        return Response({"received": request.data, "request_id": current_request_id()})


class HandMadeErrorApi(OpenApi):
    def get(self, request):
        return Response({"reason": "made by hand"}, status=409)


def plain_django_boom(request):
    raise RuntimeError("secret in a plain view")


@require_GET
def plain_get_only(request):
    return HttpResponse("ok")


urlpatterns = [
    path("v1/test/boom", BoomApi.as_view()),
    path("v1/test/domain/<str:name>", DomainErrorApi.as_view()),
    path("v1/test/django-validation", DjangoValidationErrorApi.as_view()),
    path("v1/test/deferred", DeferredWriteApi.as_view()),
    path("v1/test/echo", EchoApi.as_view()),
    path("v1/test/hand-made-error", HandMadeErrorApi.as_view()),
    path("v1/test/plain-boom", plain_django_boom),
    path("v1/test/plain-get-only", plain_get_only),
    *urlpatterns,
]
