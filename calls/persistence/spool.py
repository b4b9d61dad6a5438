"""The spool: a durable local journal of call writes made while the database is away.

Each entry is the whole call (the call and its participants) as it stood after one write, so
replaying an entry is an idempotent upsert, and replaying a journal twice leaves the database
as replaying it once. Entries are replayed in the order they were written and deleted only
after the database has committed them; a process that dies mid-replay replays the last entry
again, which changes nothing.

The journal is an SQLite file (WAL, ``synchronous=FULL``: an entry is on disk before the client
hears "deferred"). SQLite's own file locking lets several service processes on one host share
it; ``BEGIN IMMEDIATE`` makes one replayer at a time.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from calls.exceptions import PersistenceUnavailable
from calls.persistence import metrics

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    status TEXT NOT NULL,
    operation TEXT NOT NULL,
    written_at REAL NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_call ON entries (call_id, seq);
CREATE INDEX IF NOT EXISTS entries_conversation ON entries (conversation_id, seq);
"""


class SpoolFull(PersistenceUnavailable):
    default_message = (
        "The database is unavailable and the local call journal is full; "
        "the write was refused so that nothing already journaled is lost."
    )


class Spool:
    def __init__(self, path: Path | str, *, max_bytes: int, max_age: float):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            yield conn
        finally:
            conn.close()

    # --- writing -------------------------------------------------------------------------------

    @contextmanager
    def write_transaction(self) -> Iterator[SpoolTransaction]:
        """Read and append atomically, across threads and processes (``BEGIN IMMEDIATE``)."""
        with self._lock, self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            tx = SpoolTransaction(self, conn)
            try:
                yield tx
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        if tx.appended:
            metrics.spool_depth.set(self.depth())

    def append(self, *, call_id: str, conversation_id: str, status: str, operation: str, payload: dict) -> int:
        with self.write_transaction() as tx:
            return tx.append(
                call_id=call_id, conversation_id=conversation_id, status=status, operation=operation, payload=payload
            )

    # --- reading -------------------------------------------------------------------------------

    def latest(self, call_id) -> dict | None:
        """The newest journaled state of one call, or None."""
        with self._connect() as conn:
            return _latest(conn, call_id)

    def latest_with_status(self, status: str) -> list[dict]:
        """The newest journaled state of each call whose newest state has ``status``."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT payload FROM entries WHERE status = ?"
                " AND seq IN (SELECT MAX(seq) FROM entries GROUP BY call_id)",
                (status,),
            ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def depth(self) -> int:
        with self._connect() as conn:
            return conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    def size_bytes(self) -> int:
        with self._connect() as conn:
            return conn.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM entries").fetchone()[0]

    # --- replay --------------------------------------------------------------------------------

    def replay(self, apply: Callable[[dict], None], *, limit: int | None = None, chunk: int = 500) -> int:
        """Catch up: apply the entries journaled so far, oldest first, deleting them only after
        ``apply`` returned. Entries journaled meanwhile wait for the next call.

        Reads and applies without holding the journal's write lock, so writers are not held up
        while the database catches up; each chunk's deletes are one short write transaction.
        ``apply`` must be idempotent and must never let an older state overwrite a newer one
        (``store.replay_entry`` is, and does not): a process that dies after applying an entry and
        before deleting it, or two processes replaying the same journal, change nothing by
        applying an entry twice. Each entry is a whole call, so of a chunk's entries for one call
        only the newest is applied (the others would be overwritten at once). An exception from
        ``apply`` stops the replay; the entries not yet deleted stay journaled.
        """
        replayed = 0
        with self._connect() as conn:
            last = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM entries").fetchone()[0]
        while limit is None or replayed < limit:
            size = chunk if limit is None else min(chunk, limit - replayed)
            with self._connect() as conn:  # only what was journaled when this replay began
                rows = conn.execute(
                    "SELECT seq, call_id, payload FROM entries WHERE seq <= ? ORDER BY seq LIMIT ?", (last, size)
                ).fetchall()
            if not rows:
                break
            applied = set()
            try:
                for _seq, call_id, payload in _newest_per_call(rows):
                    apply(json.loads(payload))
                    applied.add(call_id)
            finally:
                done = [seq for seq, call_id, _payload in rows if call_id in applied]
                self._delete(done)
                replayed += len(done)
                metrics.spool_replayed.inc(len(done))
        metrics.spool_depth.set(self.depth())
        return replayed

    def drain_and_then(self, apply: Callable[[dict], None], on_empty: Callable[[], None]) -> int:
        """Finish a replay atomically: with the journal locked against writers, apply what is
        left, delete it and call ``on_empty`` (which closes the breaker) before anyone can
        journal again. Call it after ``replay`` has caught up, so the lock is held briefly."""
        with self._lock, self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows = conn.execute("SELECT seq, call_id, payload FROM entries ORDER BY seq").fetchall()
                for _seq, _call_id, payload in _newest_per_call(rows):
                    apply(json.loads(payload))
                conn.execute("DELETE FROM entries")
                on_empty()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        metrics.spool_replayed.inc(len(rows))
        metrics.spool_depth.set(0)
        with self._connect() as conn:
            conn.execute("VACUUM")  # truncate the file once drained
        return len(rows)

    def _delete(self, seqs: list[int]) -> None:
        if not seqs:
            return
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("DELETE FROM entries WHERE seq = ?", [(seq,) for seq in seqs])
            conn.execute("COMMIT")


def _newest_per_call(rows) -> list[tuple[int, str, str]]:
    """Of ``rows`` (seq, call_id, payload), the newest entry of each call, oldest first."""
    newest = {}
    for seq, call_id, payload in rows:
        newest[call_id] = (seq, call_id, payload)
    return sorted(newest.values())


class SpoolTransaction:
    """Reads and appends inside one spool write transaction."""

    def __init__(self, spool: Spool, conn: sqlite3.Connection):
        self.spool = spool
        self.conn = conn
        self.appended = 0

    def latest(self, call_id) -> dict | None:
        return _latest(self.conn, call_id)

    def depth(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    def latest_in_conversation(self, conversation_id) -> list[dict]:
        """The newest journaled state of each call of one conversation."""
        rows = self.conn.execute(
            "SELECT payload FROM entries WHERE seq IN ("
            " SELECT MAX(seq) FROM entries WHERE conversation_id = ? GROUP BY call_id)",
            (str(conversation_id),),
        ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def append(self, *, call_id, conversation_id, status: str, operation: str, payload: dict) -> int:
        """Journal one call write; refuse it (SpoolFull) rather than overflow or drop old entries."""
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
        used, oldest = self.conn.execute(
            "SELECT COALESCE(SUM(LENGTH(payload)), 0), MIN(written_at) FROM entries"
        ).fetchone()
        if used + len(body) > self.spool.max_bytes:
            metrics.spool_refused.inc()
            raise SpoolFull(details={"spool_bytes": used, "spool_max_bytes": self.spool.max_bytes})
        if oldest is not None and time.time() - oldest > self.spool.max_age:
            metrics.spool_refused.inc()
            raise SpoolFull(
                "The database has been unavailable longer than the call journal may hold writes; "
                "the write was refused.",
                details={"spool_max_age_seconds": self.spool.max_age},
            )
        cursor = self.conn.execute(
            "INSERT INTO entries (call_id, conversation_id, status, operation, written_at, payload) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (str(call_id), str(conversation_id), status, operation, time.time(), body),
        )
        self.appended += 1
        return cursor.lastrowid


def _latest(conn: sqlite3.Connection, call_id) -> dict | None:
    row = conn.execute(
        "SELECT payload FROM entries WHERE call_id = ? ORDER BY seq DESC LIMIT 1", (str(call_id),)
    ).fetchone()
    return json.loads(row[0]) if row else None


_spools: dict[str, Spool] = {}
_spools_lock = threading.Lock()


def get_spool() -> Spool:
    """The spool named by the settings (one object per path per process)."""
    path = str(settings.SPOOL_PATH)
    with _spools_lock:
        spool = _spools.get(path)
        if spool is None or (spool.max_bytes, spool.max_age) != (settings.SPOOL_MAX_BYTES, settings.SPOOL_MAX_AGE):
            spool = Spool(path, max_bytes=settings.SPOOL_MAX_BYTES, max_age=settings.SPOOL_MAX_AGE)
            _spools[path] = spool
        return spool
