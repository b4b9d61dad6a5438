"""DRF's ``EXCEPTION_HANDLER``: the one rule of the API that needs an app, then ``core``'s handler.

A transient database error under a request the spool cannot serve (log-in, history, ...)
opens the persistence breaker and is answered ``503 PERSISTENCE_UNAVAILABLE`` with
``Retry-After``, not 500. Everything else is ``core.api.exception_handler``'s.
"""

from __future__ import annotations

from django.db import DatabaseError
from rest_framework.response import Response

from calls.exceptions import PersistenceUnavailable
from calls.persistence.availability import report_outage
from core.api import exception_handler as core_handler
from core.db_errors import is_transient


def api_exception_handler(exc: Exception, context: dict) -> Response:
    if isinstance(exc, DatabaseError) and is_transient(exc):
        report_outage(exc)
        exc = PersistenceUnavailable()
    return core_handler.api_exception_handler(exc, context)
