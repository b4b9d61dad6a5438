"""The spool: a durable local journal of call writes made while the database is away.

Each entry is the whole call (the call and its participants) as it stood after one write, so
replaying an entry is an idempotent upsert, and replaying a journal twice leaves the database
as replaying it once. Entries are replayed in the order they were written and deleted only
after the database has committed them; a process that dies mid-replay replays the last entry
again, which changes nothing.

An entry that cannot be applied for a reason that is not an outage (``apply`` raises
``UnappliableEntry``: a constraint, a payload that does not decode, a bug) does not stop the
replay: it moves, with its reason and time, to the ``quarantine`` table of the same file, and the
replay goes on. Nothing leaves the quarantine by itself: ``retry_quarantined`` applies the
entries again (after a fix), ``discard_quarantined`` removes one on purpose; both are logged.
Quarantined entries count neither towards the depth nor towards the size and age limits.

The journal is an SQLite file (WAL, ``synchronous=FULL``: an entry is on disk before the client
hears "deferred"). SQLite's own file locking lets several service processes on one host share
it; ``BEGIN IMMEDIATE`` makes one replayer at a time.
"""

from __future__ import annotations

import json
import logging
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
CREATE TABLE IF NOT EXISTS quarantine (
    seq INTEGER PRIMARY KEY,  -- the entry's seq in the journal: the id operators name it by
    call_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    status TEXT NOT NULL,
    operation TEXT NOT NULL,
    written_at REAL NOT NULL,
    payload TEXT NOT NULL,
    reason TEXT NOT NULL,
    quarantined_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1
);
"""
ENTRY_COLUMNS = "seq, call_id, conversation_id, status, operation, written_at, payload"

logger = logging.getLogger("calls.persistence")


class UnappliableEntry(Exception):
    """Raised by a replay's ``apply`` for an entry that will not apply however long one waits;
    the replay quarantines the entry and goes on."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


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

    def replay(
        self,
        apply: Callable[[dict], None],
        *,
        apply_many: Callable[[list[dict]], None] | None = None,
        limit: int | None = None,
        chunk: int = 500,
    ) -> int:
        """Catch up: apply the entries journaled so far, oldest first, deleting them only after
        ``apply`` returned. Entries journaled meanwhile wait for the next call.

        Reads and applies without holding the journal's write lock, so writers are not held up
        while the database catches up; each chunk's deletes are one short write transaction.
        ``apply`` must be idempotent and must never let an older state overwrite a newer one
        (``replay.replay_entry`` is, and does not): a process that dies after applying an entry and
        before deleting it, or two processes replaying the same journal, change nothing by
        applying an entry twice. Each entry is a whole call, so of a chunk's entries for one call
        only the newest is applied (the others would be overwritten at once); when that one is
        quarantined, so are the chunk's older entries of the call. Any exception from ``apply``
        but ``UnappliableEntry`` stops the replay; the entries not yet settled stay journaled.
        ``apply_many``, when given, applies a chunk's entries in one go (the fast path); when it
        raises ``UnappliableEntry`` the chunk is applied again entry by entry with ``apply``.
        Returns how many entries were applied (quarantined ones are not counted).
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
            applied, quarantined = set(), {}
            try:
                _apply_newest_per_call(apply, rows, applied, quarantined, apply_many=apply_many)
            finally:
                with self._connect() as conn:
                    conn.execute("BEGIN IMMEDIATE")
                    done = _settle(conn, rows, applied, quarantined)
                    conn.execute("COMMIT")
                replayed += done
                metrics.spool_replayed.inc(done)
                if quarantined:
                    self._publish_quarantined()
        metrics.spool_depth.set(self.depth())
        return replayed

    def drain_and_then(
        self,
        apply: Callable[[dict], None],
        on_empty: Callable[[], None],
        *,
        apply_many: Callable[[list[dict]], None] | None = None,
    ) -> int:
        """Finish a replay atomically: with the journal locked against writers, apply what is
        left (quarantining what cannot apply), delete it and call ``on_empty`` (which closes the
        breaker) before anyone can journal again. Call it after ``replay`` has caught up, so the
        lock is held briefly."""
        with self._lock, self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows = conn.execute("SELECT seq, call_id, payload FROM entries ORDER BY seq").fetchall()
                applied, quarantined = set(), {}
                _apply_newest_per_call(apply, rows, applied, quarantined, apply_many=apply_many)
                done = _settle(conn, rows, applied, quarantined)
                on_empty()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        metrics.spool_replayed.inc(done)
        metrics.spool_depth.set(0)
        if quarantined:
            self._publish_quarantined()
        with self._connect() as conn:
            conn.execute("VACUUM")  # truncate the file once drained
        return done

    # --- quarantine ----------------------------------------------------------------------------

    def quarantined_count(self) -> int:
        with self._connect() as conn:
            return conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0]

    def quarantined(self) -> list[dict]:
        """The quarantined entries, oldest first, without their payloads."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT seq, call_id, operation, status, written_at, reason, quarantined_at, attempts"
                " FROM quarantine ORDER BY seq"
            ).fetchall()
        keys = ("seq", "call_id", "operation", "status", "written_at", "reason", "quarantined_at", "attempts")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def retry_quarantined(self, apply: Callable[[dict], None]) -> tuple[int, int]:
        """Apply every quarantined entry again, oldest first (after the cause was removed): one
        that applies leaves the quarantine, one that still cannot stays with its new reason.
        Any other exception from ``apply`` (an outage) stops, keeping the rest. Returns (applied,
        still quarantined)."""
        with self._connect() as conn:
            rows = conn.execute("SELECT seq, call_id, operation, payload FROM quarantine ORDER BY seq").fetchall()
        applied = 0
        try:
            for seq, call_id, operation, payload in rows:
                reason = _apply_one(apply, seq, payload, quarantining=False)
                with self._connect() as conn:
                    conn.execute("BEGIN IMMEDIATE")
                    if reason is None:
                        conn.execute("DELETE FROM quarantine WHERE seq = ?", (seq,))
                    else:
                        conn.execute(
                            "UPDATE quarantine SET reason = ?, attempts = attempts + 1 WHERE seq = ?", (reason, seq)
                        )
                    conn.execute("COMMIT")
                if reason is None:
                    applied += 1
                    logger.info("Quarantined call write %d (call %s, %s) applied on retry", seq, call_id, operation)
                else:
                    logger.warning(
                        "Quarantined call write %d (call %s, %s) still cannot be applied: %s",
                        seq,
                        call_id,
                        operation,
                        reason,
                    )
        finally:
            self._publish_quarantined()
        return applied, self.quarantined_count()

    def discard_quarantined(self, seq: int) -> dict | None:
        """Remove one quarantined entry on purpose; the entry (with its payload, also logged), or
        None when no quarantined entry has that seq."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(
                "SELECT seq, call_id, operation, status, reason, payload FROM quarantine WHERE seq = ?", (seq,)
            ).fetchone()
            if row is not None:
                conn.execute("DELETE FROM quarantine WHERE seq = ?", (seq,))
            conn.execute("COMMIT")
        if row is None:
            return None
        entry = dict(zip(("seq", "call_id", "operation", "status", "reason", "payload"), row, strict=True))
        logger.warning(
            "Discarded quarantined call write %d (call %s, %s; quarantined for: %s) on request; its payload was: %s",
            entry["seq"],
            entry["call_id"],
            entry["operation"],
            entry["reason"],
            entry["payload"],
        )
        self._publish_quarantined()
        return entry

    def _publish_quarantined(self) -> None:
        metrics.spool_quarantined.set(self.quarantined_count())


def _apply_newest_per_call(apply, rows, applied: set, quarantined: dict[str, str], *, apply_many=None) -> None:
    """Apply the newest of ``rows`` per call, noting in ``applied`` and ``quarantined`` (call id ->
    reason) how each went, as it goes: an exception other than ``UnappliableEntry`` leaves both
    telling the truth about what came before it. With ``apply_many``, all of them in one go
    first; one by one only when that cannot apply them all."""
    newest = _newest_per_call(rows)
    if apply_many is not None and len(newest) > 1:
        try:
            apply_many([json.loads(payload) for _seq, _call_id, payload in newest])
        except (UnappliableEntry, ValueError):
            pass  # one of them is at fault: find it below
        else:
            applied.update(call_id for _seq, call_id, _payload in newest)
            return
    for seq, call_id, payload in newest:
        reason = _apply_one(apply, seq, payload)
        if reason is None:
            applied.add(call_id)
        else:
            quarantined[call_id] = reason


def _apply_one(apply: Callable[[dict], None], seq: int, payload: str, *, quarantining: bool = True) -> str | None:
    """Apply one entry; None when it applied, the reason when it cannot (``UnappliableEntry``)."""
    try:
        decoded = json.loads(payload)
    except ValueError as exc:
        reason = f"undecodable payload: {exc}"
    else:
        try:
            apply(decoded)
            return None
        except UnappliableEntry as exc:
            reason = exc.reason
    if quarantining:
        logger.error("Quarantined journaled call write %d: %s; the replay goes on", seq, reason)
    return reason


def _settle(conn: sqlite3.Connection, rows, applied: set, quarantined: dict[str, str]) -> int:
    """Inside a write transaction: delete the rows of the applied calls and move those of the
    quarantined calls to the quarantine with their reason; how many rows were applied."""
    now = time.time()
    done = [seq for seq, call_id, _payload in rows if call_id in applied]
    moved = [(quarantined[call_id], now, seq) for seq, call_id, _payload in rows if call_id in quarantined]
    conn.executemany(
        f"INSERT OR REPLACE INTO quarantine ({ENTRY_COLUMNS}, reason, quarantined_at)"  # noqa: S608 (constant columns)
        f" SELECT {ENTRY_COLUMNS}, ?, ? FROM entries WHERE seq = ?",
        moved,
    )
    conn.executemany("DELETE FROM entries WHERE seq = ?", [(seq,) for seq in done] + [(m[2],) for m in moved])
    return len(done)


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
