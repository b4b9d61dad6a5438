"""The one place where exceptions become API errors (DRF's ``EXCEPTION_HANDLER``).

DRF exceptions, Django's ``Http404`` / ``PermissionDenied`` / ``ValidationError`` /
``RequestDataTooBig`` and every ``core.exceptions.ApplicationError`` (the apps' domain errors,
invalid tokens) map to a code, a status and headers, without knowing which app raised them;
anything else is logged with its traceback and answered ``500 INTERNAL_ERROR`` without one.
The renderer wraps the result in the error envelope. What only an app can decide (a transient
database error opens the persistence breaker) is added above, in
``secureconnect.api.exception_handler``, before this runs.
"""

from __future__ import annotations

import logging
import math

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import set_rollback

from core.api import envelope
from core.exceptions import ApplicationError

logger = logging.getLogger(__name__)

BEARER_CHALLENGE = "Bearer"


def api_exception_handler(exc: Exception, context: dict) -> Response:
    set_rollback()
    error, status, headers = describe_exception(exc, context)
    if status == 401:
        headers.setdefault("WWW-Authenticate", BEARER_CHALLENGE)
    return Response(error, status=status, headers=headers)


def describe_exception(exc: Exception, context: dict | None = None) -> tuple[dict, int, dict]:
    """``(error body, HTTP status, extra headers)`` for any exception."""
    if isinstance(exc, ApplicationError):
        error = envelope.error_body(exc.code, exc.message, exc.details)
        return error, envelope.status_for_code(exc.code), dict(exc.headers)
    if isinstance(exc, DjangoValidationError):
        details = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return envelope.error_body("VALIDATION_ERROR", details=details), 400, {}
    if isinstance(exc, RequestDataTooBig):
        return envelope.error_body("PAYLOAD_TOO_LARGE"), 413, {}
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    if isinstance(exc, drf.ParseError):
        details = {"body": [str(exc.detail)]}
        return envelope.error_body("VALIDATION_ERROR", "The request body is not valid JSON.", details), 400, {}
    if isinstance(exc, drf.ValidationError):
        return envelope.error_body("VALIDATION_ERROR", details=_field_details(exc.detail)), 400, {}
    if isinstance(exc, drf.Throttled):
        retry_after = math.ceil(exc.wait) if exc.wait is not None else 1
        error = envelope.error_body("RATE_LIMITED", details={"retry_after": retry_after})
        return error, 429, {"Retry-After": str(retry_after)}
    if isinstance(exc, drf.APIException):
        code = envelope.code_for_status(exc.status_code)
        headers = {"WWW-Authenticate": exc.auth_header} if getattr(exc, "auth_header", None) else {}
        message = str(exc.detail) if isinstance(exc.detail, str) else None
        return envelope.error_body(code, message), envelope.status_for_code(code), headers

    if isinstance(exc, IntegrityError):
        # A write that met a constraint a concurrent request (or a deleted account) broke.
        logger.warning("Integrity error answered 409: %s", exc)
        return envelope.error_body("CONFLICT", "The request conflicts with data that changed meanwhile."), 409, {}

    view = (context or {}).get("view")
    logger.error("Unhandled %s in %s", type(exc).__name__, type(view).__name__ if view else "API", exc_info=exc)
    return envelope.error_body("INTERNAL_ERROR"), 500, {}


def _field_details(detail) -> dict:
    """DRF's error detail as ``{field: [messages]}``; errors about the whole body go under
    ``non_field_errors``."""
    if isinstance(detail, dict):
        return detail
    if isinstance(detail, list):
        return {"non_field_errors": detail}
    return {"non_field_errors": [detail]}
