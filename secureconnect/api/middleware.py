"""Request-level rules of the API: the request id, the body size cap, and JSON errors everywhere.

``RequestIdMiddleware`` goes first in ``MIDDLEWARE`` so that every log line and response
carries the id; ``ApiErrorMiddleware`` right after it, so that it sees every response of the
API paths, including those Django produces on its own (a technical 404 page in development,
a bare 405, a 400 for a body it refused).
"""

from __future__ import annotations

from django.conf import settings
from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse

from core.api import envelope
from core.api.request_id import HEADER, bind_request_id, clear_request_id, request_id_from_header

API_PATH_PREFIXES = ("/v1/", "/health")


def is_api_path(path: str) -> bool:
    """Paths whose every answer is JSON in the envelope (the admin keeps Django's HTML pages)."""
    return path == "/v1" or path.startswith(API_PATH_PREFIXES)


class RequestIdMiddleware:
    """Binds the id for the whole request; it is cleared when the response is finished."""

    def __init__(self, get_response):
        self.get_response = get_response
        request_finished.connect(clear_request_id, dispatch_uid="core.api.request_id")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = request_id_from_header(request.headers.get(HEADER))
        bind_request_id(request.request_id)
        response = self.get_response(request)
        response[HEADER] = request.request_id
        return response


class ApiErrorMiddleware:
    """On API paths: answer 413 before reading a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``
    (DRF's JSON parser reads the stream itself and would not enforce it), and put any error
    response that is not JSON yet into the error envelope."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_api_path(request.path):
            return self.get_response(request)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and _declared_body_size(request) > limit:
            return envelope.error_response(413, details={"max_bytes": limit})
        response = self.get_response(request)
        if response.status_code >= 400 and not response.get("Content-Type", "").startswith("application/json"):
            replacement = envelope.error_response(response.status_code)
            for header in ("Allow", "Retry-After", "WWW-Authenticate"):
                if header in response:
                    replacement[header] = response[header]
            return replacement
        return response


def _declared_body_size(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0
