"""Writes and reads that only the database can take (no spool: accounts, conversations, history,
analytics): while it is away they answer 503 with ``Retry-After``; one that meets a new outage
reports it (``availability.report_outage``) and answers the same. The one outage path for them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import DatabaseError

from calls.exceptions import PersistenceUnavailable
from calls.persistence import availability
from core.db_errors import is_ambiguous, is_transient
from core.transactions import run_in_transaction

T = TypeVar("T")


def guard_available() -> None:
    """For reads that only the database can answer (history, analytics)."""
    if availability.is_limited():
        raise PersistenceUnavailable()


def database_only_write(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a transaction (40001 retried). A commit of unknown outcome (SQLSTATE 40003)
    is not retried here: nothing journals it, so the client is told to look before trying again."""
    try:
        return run_in_transaction(fn)
    except DatabaseError as exc:
        if is_ambiguous(exc):
            raise PersistenceUnavailable(
                "The database could not confirm the write; check whether it happened before trying again."
            ) from exc
        _report_if_outage(exc)
        raise


def database_only_read(fn: Callable[[], T]) -> T:
    """Run ``fn``, a read only the database can answer."""
    guard_available()
    try:
        return fn()
    except DatabaseError as exc:
        _report_if_outage(exc)
        raise


def _report_if_outage(exc: DatabaseError) -> None:
    if is_transient(exc):
        availability.report_outage(exc)
        raise PersistenceUnavailable() from exc
