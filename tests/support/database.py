"""A connection of a test's own to the test database, beside Django's."""

from __future__ import annotations

import psycopg2
from django.db import connection


def raw_connection(*, autocommit: bool = True):
    """A psycopg2 connection to the database Django's default connection uses (its parameters,
    without the cursor factory and context Django adds): another session, as another process
    would open it."""
    params = connection.get_connection_params()
    conn = psycopg2.connect(**{k: v for k, v in params.items() if k not in ("cursor_factory", "context")})
    conn.autocommit = autocommit
    return conn
