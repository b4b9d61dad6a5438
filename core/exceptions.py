"""The one base of every application error.

Apps raise subclasses (``accounts.exceptions``, ``calls.exceptions``, ...) that set ``code``
(the API error code, ``core.api.envelope.ERROR_STATUS``) and ``default_message``. The API's
exception handler (``core.api.exception_handler``) and the socket consumers turn any of them
into the error envelope or a close code without knowing the app that raised it.
"""

from __future__ import annotations


class ApplicationError(Exception):
    """``code``, ``message``, ``details`` (for the envelope) and ``headers`` (for the response)."""

    code = "CONFLICT"
    default_message = "The request conflicts with the current state."

    def __init__(self, message: str | None = None, *, details: dict | None = None, headers: dict | None = None):
        self.message = message or self.default_message
        self.details = details or {}
        self.headers = dict(headers or {})
        super().__init__(self.message)
