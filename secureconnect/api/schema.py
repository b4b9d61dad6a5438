"""The OpenAPI schema tells the truth about the envelope, from one postprocessing hook.

Views describe their payload only (serializers, ``extend_schema``). This hook, listed in
``SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]``, wraps every documented 2xx body in the
success envelope, gives every documented error status the error envelope, and adds the errors
an operation can produce by the rules of ``_possible_errors``. Other apps' views need nothing
special.
"""

from __future__ import annotations

from html import escape

from drf_spectacular.renderers import OpenApiYamlRenderer
from rest_framework.renderers import BaseRenderer

from core.api.envelope import ERROR_STATUS, PERSISTENCE_DEFERRED
from core.api.request_id import HEADER as REQUEST_ID_HEADER

ERROR_DESCRIPTIONS = {
    400: "VALIDATION_ERROR: malformed JSON, a missing field, a wrong type or an out-of-range value.",
    401: "UNAUTHORIZED: no bearer token, or an invalid, expired or revoked one.",
    403: "FORBIDDEN: authenticated, but not allowed to do this.",
    404: "NOT_FOUND",
    409: "CONFLICT: the request conflicts with the current state.",
    413: "PAYLOAD_TOO_LARGE: the request body is over the size limit.",
    429: "RATE_LIMITED: too many requests; wait Retry-After seconds.",
    503: "PERSISTENCE_UNAVAILABLE: the database is away; retry after Retry-After seconds.",
}
_UNSAFE_METHODS = ("post", "put", "patch", "delete")
_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

META_SCHEMA = {
    "type": "object",
    "required": ["timestamp", "request_id"],
    "properties": {
        "timestamp": {"type": "string", "format": "date-time"},
        "request_id": {"type": "string"},
        "persistence": {
            "type": "string",
            "enum": [PERSISTENCE_DEFERRED],
            "description": "Present when the write was spooled and will reach the database later.",
        },
    },
}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["code", "message", "details"],
    "properties": {
        "code": {"type": "string", "enum": list(ERROR_STATUS)},
        "message": {"type": "string"},
        "details": {"type": "object", "additionalProperties": True},
    },
}
ERROR_ENVELOPE_SCHEMA = {
    "type": "object",
    "required": ["success", "error", "meta"],
    "properties": {
        "success": {"type": "boolean", "enum": [False]},
        "error": {"$ref": "#/components/schemas/ApiError"},
        "meta": {"$ref": "#/components/schemas/ApiMeta"},
    },
}
_NULL_DATA = {"type": "object", "nullable": True, "description": "Always null."}
HEADERS = {
    "RetryAfter": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."},
    "RequestId": {
        "schema": {"type": "string"},
        "description": "The request id (the client's when sane, else generated); also in meta.request_id.",
    },
}


def wrap_responses_in_envelope(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook; see the module docstring."""
    components = result.setdefault("components", {})
    components.setdefault("headers", {}).update(HEADERS)
    schemas = components.setdefault("schemas", {})
    schemas["ApiMeta"] = META_SCHEMA
    schemas["ApiError"] = ERROR_SCHEMA
    schemas["ApiErrorEnvelope"] = ERROR_ENVELOPE_SCHEMA
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method in _HTTP_METHODS:
                _wrap_operation(method, operation)
    return result


def _wrap_operation(method: str, operation: dict) -> None:
    responses = operation.setdefault("responses", {})
    for status in _possible_errors(method, operation):
        responses.setdefault(str(status), {"description": ERROR_DESCRIPTIONS[status]})
    for status, response in responses.items():
        status_code = int(status) if str(status).isdigit() else 0
        headers = response.setdefault("headers", {})
        headers[REQUEST_ID_HEADER] = {"$ref": "#/components/headers/RequestId"}
        if 200 <= status_code < 300:
            _wrap_success(status_code, response)
        elif status_code >= 400:
            response["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ApiErrorEnvelope"}}}
            if status_code in (429, 503):
                headers["Retry-After"] = {"$ref": "#/components/headers/RetryAfter"}
    operation["responses"] = dict(sorted(responses.items()))


def _wrap_success(status_code: int, response: dict) -> None:
    if status_code == 204:
        return  # no body at all
    content = response.get("content") or {"application/json": {"schema": _NULL_DATA}}
    wrapped = {}
    for media_type, media in content.items():
        data_schema = media.get("schema", _NULL_DATA)
        wrapped[media_type] = {
            **media,
            "schema": {
                "type": "object",
                "required": ["success", "data", "meta"],
                "properties": {
                    "success": {"type": "boolean", "enum": [True]},
                    "data": data_schema,
                    "meta": {"$ref": "#/components/schemas/ApiMeta"},
                },
            },
        }
    response["content"] = wrapped


def _possible_errors(method: str, operation: dict) -> list[int]:
    """The error statuses an operation can answer with, from what the schema knows of it:
    a body or parameters can be invalid (400) and a body too large (413); authenticated
    operations need a valid token (401) and are throttled per user (429), and may be refused
    when they name a resource or change something (403); a path parameter names something that
    may not exist (404); an authenticated write may conflict (409); anything may meet the
    database away (503).
    A view documents further errors (and anonymous throttles) with ``extend_schema``."""
    security = operation.get("security") or []
    authenticated = bool(security) and {} not in security
    has_body = "requestBody" in operation
    has_path_parameter = any(p.get("in") == "path" for p in operation.get("parameters", []))
    errors = []
    if has_body or operation.get("parameters"):
        errors.append(400)
    if authenticated:
        errors.append(401)
    if authenticated and (has_path_parameter or method in _UNSAFE_METHODS):
        errors.append(403)
    if has_path_parameter:
        errors.append(404)
    if authenticated and method in _UNSAFE_METHODS:
        errors.append(409)
    if has_body:
        errors.append(413)
    if authenticated:
        errors.append(429)
    errors.append(503)
    return errors


class SchemaPageRenderer(BaseRenderer):
    """``/v1/schema`` for a browser (``Accept: text/html``): the same YAML, escaped in a page,
    instead of an ``application/vnd.oai.openapi`` file the browser would download. Listed after
    the YAML and JSON renderers, so ``*/*`` and the OpenAPI media types get those as before."""

    media_type = "text/html"
    format = "html"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        yaml = OpenApiYamlRenderer().render(data, renderer_context=renderer_context).decode()
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            "<title>SecureConnect video service API schema</title></head><body>"
            '<p>OpenAPI 3 schema (YAML). <a href="?format=json">JSON</a> · '
            '<a href="/v1/docs">interactive docs</a></p>'
            f"<pre>{escape(yaml)}</pre></body></html>"
        ).encode()
