"""The request id: one per request, taken from ``X-Request-ID`` when sane, generated otherwise.

It lives in a context variable so that every log record written while the request is served
carries it (``RequestIdLogFilter``), and the envelope's ``meta.request_id`` repeats it. This
module imports nothing from Django's app registry: the logging configuration loads it early.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

HEADER = "X-Request-ID"
NO_REQUEST = "-"  # what log lines show outside a request (start-up, management commands)

_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def request_id_from_header(value: str | None) -> str:
    """The incoming id when it is 1-128 characters of ``[A-Za-z0-9._-]``, else a new uuid4 hex.

    An insane id (too long, spaces, control characters) is replaced rather than echoed, so it
    can neither forge log lines nor bloat responses.
    """
    if value is not None and _SANE_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return _current.get()


def bind_request_id(request_id: str) -> None:
    _current.set(request_id)


def clear_request_id(**signal_kwargs) -> None:
    """Forget the id; connected to ``request_finished`` so that Django's own log line about the
    response (``django.request``, written after the middleware returned) still carries it."""
    _current.set(None)


class RequestIdLogFilter(logging.Filter):
    """Adds ``record.request_id`` (``-`` outside a request) for the ``%(request_id)s`` format."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _current.get() or NO_REQUEST
        return True
