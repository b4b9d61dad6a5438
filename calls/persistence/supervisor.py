"""The start-up check, the breaker and the replay: one background thread per serving process.

At start-up it connects with exponential backoff and full jitter (``backoff``), logging the
lines operators already grep for. When the tries are spent it enters limited mode but does
not give up: it keeps probing with capped backoff (the breaker is open; each probe is its
half-open trial). When a probe connects, it replays the spool and only then reports
``operational`` (the breaker closes). Writes that fail with connection errors at run time
open the breaker through ``availability.report_outage``, which wakes the prober.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable

import backoff
from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connections

from calls.persistence import availability, metrics
from calls.persistence import spool as spool_module
from calls.persistence.availability import LIMITED_MODE_LINE, engine_name
from core.db_errors import describe, is_permanent, is_transient

logger = logging.getLogger("calls.persistence")

# Entries left when the replay stops catching up and finishes with writers held off.
FINAL_DRAIN_ENTRIES = 100
PROCESS_STARTED = time.monotonic()


class PermanentConnectionError(Exception):
    """The database answered, and the answer will not change by waiting (password, database)."""


def check_connection(alias: str = "default") -> str:
    """Open a fresh connection, run one query, close it; the server's version on success."""
    connection = connections[alias]
    try:
        connection.close()
        connection.ensure_connection()
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute("SELECT sqlite_version()")
                return f"SQLite {cursor.fetchone()[0]}"
            cursor.execute("SELECT version()")
            full = cursor.fetchone()[0]
        return " ".join(full.split()[:3]) if "CockroachDB" in full else " ".join(full.split()[:2])
    finally:
        connection.close()


def _is_retryable(exc: BaseException) -> bool:
    return is_transient(exc) and not is_permanent(exc)


def connect_with_backoff(*, max_tries: int, base_delay: float, max_delay: float, quiet: bool = False) -> str:
    """Connect, retrying errors that can heal; the server version, or the last error raised.

    Raises ``PermanentConnectionError`` at once for errors that cannot heal.
    """
    engine = engine_name()
    attempts = 0

    def on_backoff(details):
        exc = details["exception"]
        availability.record_attempt(attempts=details["tries"], error=describe(exc))
        if not quiet:
            logger.warning(
                "%s connection attempt %d failed: %s. Retrying in %.1fs...",
                engine,
                details["tries"],
                describe(exc),
                details["wait"],
            )

    @backoff.on_exception(
        backoff.expo,
        (DatabaseError, sqlite3.Error, OSError),
        max_tries=max_tries,
        factor=base_delay,
        max_value=max_delay,
        jitter=backoff.full_jitter,
        giveup=lambda exc: not _is_retryable(exc),
        on_backoff=on_backoff,
        logger=None,
    )
    def attempt() -> str:
        nonlocal attempts
        attempts += 1
        try:
            version = check_connection()
        except (DatabaseError, sqlite3.Error, OSError) as exc:
            metrics.connection_attempts.labels(result="failure").inc()
            if is_permanent(exc) or not is_transient(exc):
                raise PermanentConnectionError(describe(exc)) from exc
            raise
        metrics.connection_attempts.labels(result="success").inc()
        return version

    version = attempt()
    availability.record_attempt(attempts=attempts, server_version=version)
    metrics.retries_before_success.set(attempts - 1)
    if not quiet:
        logger.info("Connected to %s (attempt %d/%d)", engine, attempts, max_tries)
    return version


class Supervisor:
    """``apply_entry`` and ``apply_entries`` write one journaled call state, and many, into the
    database (``calls.persistence.replay``); they are handed in so that the supervisor does not
    import what it drives."""

    def __init__(self, *, apply_entry: Callable[[dict], None], apply_entries: Callable[[list[dict]], None]):
        self._apply_entry = apply_entry
        self._apply_entries = apply_entries
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._first_connection_recorded = False
        self._permanent_failures = 0

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        availability.on_outage(self._wake.set)
        self._thread = threading.Thread(target=self._run, name="persistence-supervisor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        availability.off_outage(self._wake.set)
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return bool(self._thread and self._thread.is_alive())

    # --- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        self._wait_for_apps()
        availability.set_engine(engine_name())
        try:
            self._startup()
            while not self._stop.is_set():
                if availability.current() == availability.LIMITED:
                    self._probe_until_recovered()
                else:
                    self._wake.wait()
                    self._wake.clear()
        except Exception:
            logger.exception("Persistence supervisor stopped unexpectedly")
        finally:
            connections.close_all()

    def _wait_for_apps(self) -> None:
        # Started from AppConfig.ready(): queries wait until every app is loaded.
        deadline = time.monotonic() + 30
        while not apps.ready and time.monotonic() < deadline:
            time.sleep(0.01)

    def _startup(self) -> None:
        engine = engine_name()
        try:
            connect_with_backoff(
                max_tries=settings.DB_CONNECT_MAX_TRIES,
                base_delay=settings.DB_CONNECT_BASE_DELAY,
                max_delay=settings.DB_CONNECT_MAX_DELAY,
            )
        except PermanentConnectionError as exc:
            self._permanent_failures += 1
            logger.error("%s refused the connection: %s. Not retrying this at start-up.", engine, exc)
            self._enter_limited(str(exc))
            return
        except (DatabaseError, sqlite3.Error, OSError) as exc:
            logger.error(
                "Could not connect to %s after %d attempts: %s",
                engine,
                settings.DB_CONNECT_MAX_TRIES,
                describe(exc),
            )
            self._enter_limited(describe(exc))
            return
        self._record_first_connection()
        if not self._drain_and_close():
            self._enter_limited(availability.status().last_error or "replay failed")

    def _enter_limited(self, reason: str) -> None:
        if availability.transition(availability.LIMITED, error=reason):
            logger.warning(LIMITED_MODE_LINE)
            logger.warning("Probing %s in the background; calls are journaled until it is back.", engine_name())

    def _probe_delays(self):
        """Capped exponential backoff with full jitter (backoff's generator yields None first)."""
        delays = backoff.expo(factor=max(settings.DB_CONNECT_BASE_DELAY, 0.01), max_value=settings.DB_PROBE_MAX_DELAY)
        for delay in delays:
            if delay is not None:
                yield backoff.full_jitter(delay)

    def _probe_until_recovered(self) -> None:
        for delay in self._probe_delays():
            if self._stop.wait(delay):
                return
            if self._permanent_failures >= settings.DB_CONNECT_MAX_TRIES:
                logger.error(
                    "Giving up on %s after %d permanent failures (%s); fix the configuration and restart.",
                    engine_name(),
                    self._permanent_failures,
                    availability.status().last_error,
                )
                self._stop.wait()
                return
            try:
                connect_with_backoff(max_tries=1, base_delay=0, max_delay=0, quiet=True)
            except PermanentConnectionError as exc:
                self._permanent_failures += 1
                availability.record_attempt(attempts=availability.status().attempts + 1, error=str(exc))
                continue
            except (DatabaseError, sqlite3.Error, OSError) as exc:
                availability.record_attempt(attempts=availability.status().attempts + 1, error=describe(exc))
                continue
            self._permanent_failures = 0
            logger.info("Connected to %s (probe); replaying the call journal", engine_name())
            self._record_first_connection()
            if self._drain_and_close():
                return

    def _record_first_connection(self) -> None:
        if not self._first_connection_recorded:
            self._first_connection_recorded = True
            metrics.time_to_first_connection.set(time.monotonic() - PROCESS_STARTED)

    def _drain_and_close(self) -> bool:
        """Replay the spool, then close the breaker atomically with the last entries. False on failure.

        Catching up runs without the journal lock (writes made meanwhile are journaled and
        caught up in the next round); once few entries remain, the rest is applied with the
        journal locked and the breaker closes in the same step, so the service converges to
        ``operational`` however steadily clients keep calling."""
        spool = spool_module.get_spool()
        try:
            depth = spool.depth()
            for _ in range(100):  # bounded: each round replays what was journaled before it
                began = time.monotonic()
                caught_up = spool.replay(self._apply_entry, apply_many=self._apply_entries)
                if caught_up:
                    elapsed = max(time.monotonic() - began, 1e-6)
                    logger.info(
                        "Replayed %d journaled call write(s) into %s in %.2f s (%.0f a second)",
                        caught_up,
                        engine_name(),
                        elapsed,
                        caught_up / elapsed,
                    )
                left = spool.depth()
                if left <= FINAL_DRAIN_ENTRIES or left >= depth:
                    break  # few left, or clients write as fast as we catch up: finish with them held off
                depth = left
            finished = spool.drain_and_then(
                self._apply_entry,
                lambda: availability.transition(availability.OPERATIONAL),
                apply_many=self._apply_entries,
            )
            if finished:
                logger.info("Replayed %d journaled call write(s) into %s", finished, engine_name())
            quarantined = spool.quarantined_count()
            if quarantined:
                logger.warning(
                    "%d journaled call write(s) are quarantined (manage.py db_status lists them; "
                    "manage.py replay_spool --quarantined retries them)",
                    quarantined,
                )
            return True
        except Exception as exc:  # an outage (or a conflict) met mid-replay: the entries stay journaled
            logger.warning("Replay interrupted: %s; staying in limited mode", describe(exc))
            availability.record_attempt(attempts=availability.status().attempts, error=describe(exc))
            return False
        finally:
            connections.close_all()
