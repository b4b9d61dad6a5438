"""A bounded pool of database connections per process, shared by the threads that serve requests.

Under ASGI, Django runs each request's sync code in a thread of its own, and a Django connection
belongs to its thread: with ``CONN_MAX_AGE`` > 0 every request would leave one open connection
behind, with 0 every request opens and closes one. Here a request's connection still opens and
closes at Django's usual points (first query, ``request_finished``), but "open" takes a live
connection from this pool and "close" gives it back: at most ``DB_POOL_MAX_SIZE`` per process,
a request waits up to ``DB_POOL_TIMEOUT`` seconds for a free one.

Why not Django 5.2's own pool (``OPTIONS["pool"]``, psycopg 3's psycopg_pool)? django-cockroachdb
5.2 would work with it: its DatabaseWrapper inherits Django's PostgreSQL pool support unchanged.
But psycopg_pool hides an outage from the persistence layer (calls/persistence/): while the
database is away, ``getconn`` waits its whole timeout while background workers retry with a
growing backoff, then raises ``PoolTimeout``, which has no SQLSTATE and no connection message, so
a write would be a 500 rather than journaled; and after the database returns, the first request
waits for that backoff. Here a connection is opened in the requesting thread, so a refused or
timed-out connect raises the driver's own error at once (journaled, 503), and the first request
after the database's return connects straight away. Every idle connection is checked before it
is handed out (``_alive``): after a database restart, no request gets a dead one.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db.backends.postgresql.psycopg_any import IsolationLevel
from prometheus_client import Counter, Gauge

# psycopg2's TRANSACTION_STATUS_* and psycopg 3's pq.TransactionStatus agree on these two.
TRANSACTION_IDLE = 0
TRANSACTION_UNKNOWN = 4
# An idle connection unused this long is closed (the server or a proxy may drop it anyway).
MAX_IDLE_SECONDS = 300.0
# An idle connection unused this long is asked SELECT 1 before reuse, whatever its socket says
# (a connection dropped silently, by a NAT or a firewall, leaves nothing to read).
CHECK_AFTER_IDLE_SECONDS = 30.0

connections_gauge = Gauge(
    "secureconnect_db_pool_connections",
    "Database connections of this process's pool, by state (in_use by a request, or idle)",
    ["state"],
)
max_connections_gauge = Gauge("secureconnect_db_pool_max_connections", "DB_POOL_MAX_SIZE of this process")
timeouts_counter = Counter(
    "secureconnect_db_pool_timeouts", "Requests that waited DB_POOL_TIMEOUT for a connection and gave up"
)
discarded_counter = Counter(
    "secureconnect_db_pool_discarded_connections", "Connections closed because they failed the check or broke"
)


class ConnectionPool:
    """At most ``max_size`` connections; idle ones are reused newest first and checked first."""

    def __init__(self, *, max_size: int, timeout: float):
        self.max_size = max_size
        self.timeout = timeout
        self._idle: list[tuple[Any, float]] = []  # (connection, when it came back), newest last
        self._in_use = 0
        self._condition = threading.Condition()

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def idle(self) -> int:
        return len(self._idle)

    def acquire(self, connect: Callable[[], Any], timeout_error: type[Exception]) -> Any:
        """A live connection (checked, or new from ``connect``), to be given back with ``release``.

        Raises ``timeout_error`` (the driver's OperationalError, so that Django wraps it and the
        persistence layer sees a connection that timed out) when none frees up in time."""
        deadline = time.monotonic() + self.timeout
        with self._condition:
            while not self._idle and self._in_use >= self.max_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timeouts_counter.inc()
                    raise timeout_error(
                        f"timed out after {self.timeout:g} s waiting for a database connection: "
                        f"all {self.max_size} of this process (DB_POOL_MAX_SIZE) are in use"
                    )
                self._condition.wait(remaining)
            self._in_use += 1
            conn, since = self._idle.pop() if self._idle else (None, 0.0)
        try:
            while conn is not None and not _alive(conn, idle_for=time.monotonic() - since):
                _close_quietly(conn)
                discarded_counter.inc()
                with self._condition:
                    conn, since = self._idle.pop() if self._idle else (None, 0.0)
            return conn if conn is not None else connect()
        except BaseException:
            self._give_back_slot()
            raise

    def release(self, conn: Any, *, discard: bool = False) -> None:
        """Take a connection back: kept idle if it is clean, closed otherwise."""
        keep = not discard and _reset(conn)
        stale = []
        now = time.monotonic()
        with self._condition:
            self._in_use -= 1
            if keep:
                self._idle.append((conn, now))
            while self._idle and now - self._idle[0][1] > MAX_IDLE_SECONDS:
                stale.append(self._idle.pop(0)[0])
            self._condition.notify()
        if not keep:
            discarded_counter.inc()
            _close_quietly(conn)
        for old in stale:
            _close_quietly(old)

    def close_idle(self) -> None:
        with self._condition:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            _close_quietly(conn)

    def _give_back_slot(self) -> None:
        with self._condition:
            self._in_use -= 1
            self._condition.notify()


def _alive(conn, *, idle_for: float) -> bool:
    """Whether an idle connection may be handed out.

    An idle connection's socket has nothing to read unless the server (or the network between)
    said something: the error and end-of-stream of a server restart, a cut by a proxy. So a socket
    with nothing to read, idle for less than ``CHECK_AFTER_IDLE_SECONDS``, is taken as alive
    without a round trip; any other is asked ``SELECT 1`` (a notice, say, passes; a dead
    connection does not)."""
    if conn.closed or idle_for > MAX_IDLE_SECONDS:
        return False
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
        if not readable and idle_for < CHECK_AFTER_IDLE_SECONDS:
            return True
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
        if not conn.autocommit:
            conn.rollback()
    except Exception:  # any failure means "do not hand this one out"
        return False
    return True


def _reset(conn) -> bool:
    """Back to idle (no open transaction); False when the connection is closed or broken."""
    if conn.closed:
        return False
    status = conn.info.transaction_status
    if status == TRANSACTION_UNKNOWN:
        return False
    if status != TRANSACTION_IDLE:
        try:
            conn.rollback()
        except Exception:
            return False
    return True


def _close_quietly(conn) -> None:
    with contextlib.suppress(Exception):
        conn.close()


# One pool per database alias and process (a forked worker starts with none of its parent's).
_pools: dict[tuple[str, int], ConnectionPool] = {}
_pools_lock = threading.Lock()


def pool_for(alias: str, options: dict | None) -> ConnectionPool | None:
    """The pool of ``DATABASES[alias]["POOL"]`` in this process (None when pooling is off)."""
    if not options or not options.get("max_size"):
        return None
    key = (alias, os.getpid())
    pool = _pools.get(key)
    if pool is None:
        with _pools_lock:
            pool = _pools.setdefault(key, ConnectionPool(max_size=options["max_size"], timeout=options["timeout"]))
        if alias == "default":
            max_connections_gauge.set(pool.max_size)
    return pool


def _default_pool_size(state: str) -> int:
    pool = _pools.get(("default", os.getpid()))
    if pool is None:
        return 0
    return pool.in_use if state == "in_use" else pool.idle


connections_gauge.labels(state="in_use").set_function(lambda: _default_pool_size("in_use"))
connections_gauge.labels(state="idle").set_function(lambda: _default_pool_size("idle"))


class PooledConnectionMixin:
    """For a PostgreSQL-family DatabaseWrapper: "connect" borrows from the pool, "close" returns.

    ``CONN_MAX_AGE`` stays 0, so Django closes (returns) the connection at the end of every
    request, whatever thread served it."""

    @property
    def connection_pool(self) -> ConnectionPool | None:
        return pool_for(self.alias, self.settings_dict.get("POOL"))

    def get_new_connection(self, conn_params):
        pool = self.connection_pool
        if pool is None:
            return super().get_new_connection(conn_params)
        open_new = super().get_new_connection
        conn = pool.acquire(lambda: open_new(conn_params), self.Database.OperationalError)
        # What Django's get_new_connection sets on the wrapper for a connection it opens itself.
        level = self.settings_dict["OPTIONS"].get("isolation_level")
        self.isolation_level = IsolationLevel.READ_COMMITTED if level is None else IsolationLevel(level)
        return conn

    def _close(self):
        pool = self.connection_pool
        if pool is None or self.connection is None:
            return super()._close()
        # Closed inside an atomic block (an error mid-transaction): never reuse that connection.
        discard = self.in_atomic_block
        if self.errors_occurred and not discard and not self.is_usable():
            # A dead connection (an outage, a restart): the idle ones most likely died with it.
            discard = True
            pool.close_idle()
        with self.wrap_database_errors:
            pool.release(self.connection, discard=discard)
        return None
