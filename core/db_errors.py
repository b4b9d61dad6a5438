"""Telling database errors that can heal from those that cannot.

Django wraps the driver's exception (psycopg2, sqlite3) in its own ``django.db`` classes and
keeps the original as ``__cause__``; SQLSTATE codes live on the psycopg2 error's ``pgcode``.
"""

from __future__ import annotations

import sqlite3

from django.db import DatabaseError, InterfaceError, OperationalError

SERIALIZATION_FAILURE = "40001"
# CockroachDB's "result is ambiguous": the commit may or may not have happened. Not retried in
# place (a blind retry could apply a write twice); the write is journaled instead, and the
# journal's replay, idempotent by natural key, converges whichever way the commit went.
AMBIGUOUS_RESULT = "40003"
# Codes that mean "this will not heal by waiting": wrong password, unknown database or role.
PERMANENT_CODES = frozenset({"28P01", "28000", "3D000", "42501"})
# SQLSTATE classes that heal: 08 connection exception, 57 operator intervention (57P01
# "server is shutting down", 57P03 "cannot connect now"), 53 insufficient resources.
TRANSIENT_CLASSES = ("08", "57", "53")
PERMANENT_MESSAGES = (
    "password authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
    "role ",
)
TRANSIENT_MESSAGES = (
    "connection refused",
    "could not connect",
    "timeout expired",
    "timed out",
    "server closed the connection",
    "connection already closed",
    "terminating connection",
    "the database system is starting up",
    "the database system is shutting down",
    "ssl syscall error",
    "no route to host",
    "network is unreachable",
    "connection reset",
    "eof detected",
    "could not receive data",
    "could not send data",
    "unable to open database file",
    "database is locked",
    "could not translate host name",
    "name or service not known",
    "temporary failure in name resolution",
)


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error or of the driver error it wraps."""
    for candidate in (exc, exc.__cause__, exc.__context__):
        code = getattr(candidate, "pgcode", None) or getattr(candidate, "sqlstate", None)
        if code:
            return code
    return None


def is_serialization_failure(exc: BaseException) -> bool:
    """CockroachDB's (and SERIALIZABLE PostgreSQL's) "retry this transaction"."""
    if sqlstate(exc) == SERIALIZATION_FAILURE:
        return True
    message = str(exc).lower()
    return "restart transaction" in message or "could not serialize access" in message


def is_ambiguous(exc: BaseException) -> bool:
    """The database could not say whether the transaction committed (SQLSTATE 40003)."""
    if not isinstance(exc, DatabaseError):
        return False
    return sqlstate(exc) == AMBIGUOUS_RESULT or "result is ambiguous" in str(exc).lower()


def is_permanent(exc: BaseException) -> bool:
    code = sqlstate(exc)
    if code in PERMANENT_CODES:
        return True
    message = str(exc).lower()
    return code is None and any(text in message for text in PERMANENT_MESSAGES)


def is_transient(exc: BaseException) -> bool:
    """True for errors that say the database is (for now) out of reach."""
    if not isinstance(exc, DatabaseError | sqlite3.Error | OSError):
        return False
    if is_permanent(exc) or is_serialization_failure(exc):
        return False
    code = sqlstate(exc)
    if code:
        return code[:2] in TRANSIENT_CLASSES
    if isinstance(exc, InterfaceError):
        return True  # "connection already closed" and friends
    message = str(exc).lower()
    return isinstance(exc, OperationalError | OSError | sqlite3.OperationalError) and any(
        text in message for text in TRANSIENT_MESSAGES
    )


def describe(exc: BaseException) -> str:
    """One line for logs and the readiness body: the driver's first line, no traceback."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else exc.__class__.__name__
    return first[:300]
