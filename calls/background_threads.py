"""Background work of a serving process: the persistence supervisor and the ringing-timeout sweep."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import connections

from calls.persistence import availability
from calls.persistence.replay import replay_entries, replay_entry
from calls.persistence.supervisor import Supervisor

logger = logging.getLogger(__name__)


class ExpirySweeper:
    """Every CALL_EXPIRY_INTERVAL seconds: callees who rang too long miss the call, and calls whose
    participants' presence is gone past the grace end (the backstop for sockets whose instance
    died, which no holder on that instance will settle)."""

    def __init__(self):
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="call-expiry", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        from calls.services import call_connections_sweep, call_expire_due

        while not self._stop.wait(settings.CALL_EXPIRY_INTERVAL):
            if availability.current() == availability.STARTING:
                continue
            try:
                expired = call_expire_due()
                if expired:
                    logger.info("Marked %d unanswered call(s) as missed", expired)
                lost = call_connections_sweep()
                if lost:
                    logger.info("Ended or updated %d call(s) whose participants' connections were lost", lost)
            except Exception:
                logger.exception("Ringing-timeout sweep failed")
            finally:
                connections.close_all()


def make_supervisor() -> Supervisor:
    """A supervisor that replays through ``calls.persistence.replay``."""
    return Supervisor(apply_entry=replay_entry, apply_entries=replay_entries)


supervisor = make_supervisor()
sweeper = ExpirySweeper()


def start() -> None:
    supervisor.start()
    sweeper.start()


def wait_until_settled(timeout: float | None = None) -> str:
    """For DB_STARTUP_MODE=blocking: wait until the start-up check leaves ``starting``."""
    if not supervisor.running:
        return availability.current()
    availability.wait_for(lambda current: current != availability.STARTING, timeout=timeout)
    return availability.current()
