"""The raw answers the production server writes itself, whichever implementation serves (no
Twisted, no uvicorn here): both ``protocols`` (daphne) and ``uvicorn_protocols`` use them."""

import json

from core.api import envelope

# A connection the server gives up on is closed gracefully (what was written is flushed), and
# aborted if that has not happened after this many seconds (a peer that does not read).
ABORT_AFTER = 2.0

REQUEST_TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def payload_too_large_response(*, max_bytes: int, request_id: str) -> bytes:
    """The raw 413 the server answers with, in the API's error envelope."""
    body = envelope.error_envelope(envelope.error_body("PAYLOAD_TOO_LARGE", details={"max_bytes": max_bytes}))
    body["meta"]["request_id"] = request_id  # no request context here: the server picked the id
    content = json.dumps(body, separators=(",", ":")).encode()
    head = (
        "HTTP/1.1 413 Payload Too Large\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(content)}\r\n"
        f"X-Request-ID: {request_id}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + content
