"""CockroachDB's client-side transaction retry protocol, for every write of the service.

CockroachDB runs SERIALIZABLE and answers a conflicting transaction with SQLSTATE 40001,
expecting the client to run the whole transaction again; django-cockroachdb does not do it.
``run_in_transaction`` is the one place that does: it retries the whole ``atomic`` block with
bounded, jittered backoff. It runs outermost, ``atomic(durable=True)``, and Django refuses it
inside another ``atomic``: a retry inside a savepoint could not recover a transaction the
server has already aborted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import backoff
from django.conf import settings
from django.db import DatabaseError, connections, transaction
from prometheus_client import Counter

from core.db_errors import is_serialization_failure
from core.exceptions import ApplicationError

logger = logging.getLogger(__name__)
T = TypeVar("T")

transaction_retries = Counter(
    "secureconnect_transaction_retries",
    "Transactions retried after a serialization failure (SQLSTATE 40001).",
)


class TransactionConflict(ApplicationError):
    code = "CONFLICT"
    default_message = "The call was changed by another request at the same moment; try again."


def _log_retry(details) -> None:
    transaction_retries.inc()
    logger.info(
        "Transaction retry %d after serialization failure (SQLSTATE 40001); waiting %.3fs",
        details["tries"],
        details["wait"],
    )


def _discard_broken_connection(using: str) -> None:
    """Start from a live connection: one cut by an outage is closed so the next use reconnects."""
    connection = connections[using]
    if connection.in_atomic_block:
        return
    connection.close_if_unusable_or_obsolete()
    raw = connection.connection
    if raw is not None and getattr(raw, "closed", False):
        connection.close()


@backoff.on_exception(
    backoff.expo,
    DatabaseError,
    # Callables, read at each run (backoff evaluates them): the decorator is built once, not per
    # transaction, and the settings in force apply.
    max_tries=lambda: settings.TX_RETRY_MAX_ATTEMPTS,
    factor=lambda: settings.TX_RETRY_BASE_DELAY,
    max_value=1.0,
    jitter=backoff.full_jitter,
    giveup=lambda exc: not is_serialization_failure(exc),
    on_backoff=_log_retry,
    logger=None,
)
def _attempts(fn: Callable[[], T], using: str) -> T:
    _discard_broken_connection(using)
    with transaction.atomic(using=using, durable=True):
        return fn()


def run_in_transaction(fn: Callable[[], T], *, using: str = "default") -> T:
    """Run ``fn`` in a transaction, again from the start on SQLSTATE 40001 (bounded)."""
    try:
        return _attempts(fn, using)
    except DatabaseError as exc:
        if is_serialization_failure(exc):
            raise TransactionConflict(details={"attempts": settings.TX_RETRY_MAX_ATTEMPTS}) from exc
        raise
