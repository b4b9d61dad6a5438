"""The response envelope of API v1, built here and nowhere else.

Success: ``{"success": true, "data": ..., "meta": {...}}``.
Error: ``{"success": false, "error": {"code", "message", "details"}, "meta": {...}}``.
``meta`` holds ``timestamp`` (RFC 3339, UTC), ``request_id`` and, when the write was spooled
rather than committed, ``persistence: "deferred"``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.http import JsonResponse

from core.api.request_id import current_request_id
from core.timefmt import iso_z

# Views of the calls app set this response header when a write went to the persistence spool.
PERSISTENCE_HEADER = "X-Persistence"
PERSISTENCE_DEFERRED = "deferred"

# Every error code the API answers with, and its HTTP status.
ERROR_STATUS = {
    "VALIDATION_ERROR": 400,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "CONFLICT": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "RATE_LIMITED": 429,
    "INTERNAL_ERROR": 500,
    "PERSISTENCE_UNAVAILABLE": 503,
}
_CODE_FOR_STATUS = {status: code for code, status in ERROR_STATUS.items()}

DEFAULT_MESSAGES = {
    "VALIDATION_ERROR": "The request is invalid.",
    "UNAUTHORIZED": "Authentication credentials were not provided or are invalid.",
    "FORBIDDEN": "You do not have permission to do this.",
    "NOT_FOUND": "Not found.",
    "METHOD_NOT_ALLOWED": "Method not allowed.",
    "CONFLICT": "The request conflicts with the current state.",
    "PAYLOAD_TOO_LARGE": "The request body is too large.",
    "RATE_LIMITED": "Too many requests; try again later.",
    "INTERNAL_ERROR": "An internal error occurred.",
    "PERSISTENCE_UNAVAILABLE": "Call history is temporarily unavailable; try again shortly.",
}


def code_for_status(status: int) -> str:
    """The error code for an HTTP status; other 4xx (406, 415, ...) are validation errors."""
    if status in _CODE_FOR_STATUS:
        return _CODE_FOR_STATUS[status]
    return "VALIDATION_ERROR" if 400 <= status < 500 else "INTERNAL_ERROR"


def status_for_code(code: str) -> int:
    return ERROR_STATUS.get(code, 500)


def error_body(code: str, message: str | None = None, details: dict | None = None) -> dict:
    """The ``error`` member of the envelope."""
    return {"code": code, "message": message or DEFAULT_MESSAGES.get(code, ""), "details": details or {}}


def is_error_body(data) -> bool:
    return isinstance(data, dict) and set(data) == {"code", "message", "details"}


def meta(*, persistence: str | None = None) -> dict:
    result = {
        "timestamp": iso_z(datetime.now(UTC), timespec="milliseconds"),
        "request_id": current_request_id(),
    }
    if persistence:
        result["persistence"] = persistence
    return result


def success_envelope(data, *, persistence: str | None = None) -> dict:
    return {"success": True, "data": data, "meta": meta(persistence=persistence)}


def error_envelope(error: dict, *, persistence: str | None = None) -> dict:
    return {"success": False, "error": error, "meta": meta(persistence=persistence)}


def error_response(status: int, *, message: str | None = None, details: dict | None = None) -> JsonResponse:
    """A plain Django response in the error envelope, for errors raised outside DRF views."""
    body = error_body(code_for_status(status), message, details)
    return JsonResponse(error_envelope(body), status=status)
