"""Which database errors heal (retry) and which do not (report at once)."""

import threading
import time

import pytest
from django.db import OperationalError, connection

from calls.persistence.supervisor import PermanentConnectionError, check_connection, connect_with_backoff
from core.db_errors import is_ambiguous, is_permanent, is_serialization_failure, is_transient
from tests.support.database import raw_connection


class DriverError(Exception):
    """Stands in for a psycopg2 error as django-cockroachdb raises it (SQLSTATE on pgcode)."""

    def __init__(self, message, pgcode=None):
        super().__init__(message)
        self.pgcode = pgcode


def wrapped(message, pgcode=None, cls=OperationalError):
    exc = cls(message)
    exc.__cause__ = DriverError(message, pgcode)
    return exc


@pytest.mark.portable
@pytest.mark.parametrize(
    ("error", "transient", "permanent", "serialization"),
    [
        (wrapped("restart transaction: TransactionRetryWithProtoRefreshError", "40001"), False, False, True),
        (wrapped("server is shutting down", "57P01"), True, False, False),
        (wrapped("cannot connect now", "57P03"), True, False, False),
        (wrapped("connection failure", "08006"), True, False, False),
        (wrapped("password authentication failed for user root", "28P01"), False, True, False),
        (wrapped('database "secureconnect_poc" does not exist', "3D000"), False, True, False),
        (wrapped("duplicate key value", "23505"), False, False, False),
        (wrapped('connection to server at "cockroachdb" failed: Connection refused'), True, False, False),
        (wrapped('FATAL:  database "nope" does not exist'), False, True, False),
        (wrapped("timeout expired"), True, False, False),
        (ValueError("not a database error"), False, False, False),
    ],
)
def test_classification(error, transient, permanent, serialization):
    assert is_transient(error) is transient
    assert is_permanent(error) is permanent
    assert is_serialization_failure(error) is serialization


@pytest.mark.portable
def test_sqlstate_40003_is_ambiguous_and_neither_transient_nor_retried_in_place():
    """CockroachDB's "result is ambiguous": the commit may have happened. Not an outage to retry
    blindly, not a serialization failure to rerun: the write is journaled (routing)."""
    error = wrapped("result is ambiguous (error=rpc error: code = Unavailable)", "40003")
    assert is_ambiguous(error)
    assert not is_transient(error)
    assert not is_serialization_failure(error)
    assert not is_permanent(error)
    assert is_ambiguous(wrapped("result is ambiguous (error=...)"))  # the message alone, no SQLSTATE
    assert not is_ambiguous(wrapped("restart transaction", "40001"))
    assert not is_ambiguous(wrapped("duplicate key value", "23505"))
    assert not is_ambiguous(ValueError("result is ambiguous"))


def test_admin_shutdown_of_a_real_session_is_transient(transactional_db):
    """What a client really sees when its server process is terminated mid-query (the server
    sends 57P01; psycopg2 reports the dropped connection): an error that heals."""
    connection.ensure_connection()
    pid = connection.connection.get_backend_pid()
    killer = raw_connection()

    def terminate_soon():
        time.sleep(0.3)
        with killer.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])

    thread = threading.Thread(target=terminate_soon)
    thread.start()
    try:
        with pytest.raises(OperationalError) as excinfo, connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(10)")
    finally:
        thread.join(10)
        killer.close()
        connection.close()
    assert is_transient(excinfo.value)


def test_a_missing_database_is_reported_at_once_not_retried(transactional_db):
    settings_dict = connection.settings_dict
    original = settings_dict["NAME"]
    if True:  # base_delay 5 s: a retry would make this test slow
        try:
            connection.close()
            settings_dict["NAME"] = "secureconnect_database_that_does_not_exist"
            with pytest.raises(PermanentConnectionError, match="does not exist"):
                connect_with_backoff(max_tries=5, base_delay=5, max_delay=5, quiet=True)
        finally:
            settings_dict["NAME"] = original
            connection.close()


def test_check_connection_reports_the_engine_version(transactional_db):
    assert check_connection().startswith("PostgreSQL ")
