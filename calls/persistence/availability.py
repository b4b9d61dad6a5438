"""Whether this process can use the database now, in one place.

``starting``: the start-up check has not settled yet. ``operational``: writes go to the
database. ``limited``: the database is away; call writes go to the spool, and the supervisor
probes until it can replay them and return to ``operational``.

``report_outage`` is the one door through which code that met the database's absence says so:
it opens the breaker (once, with the log lines operators grep for) and wakes whoever listens
(the supervisor registers its prober with ``on_outage`` when it starts), so nothing that writes
or reads has to import the supervisor.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from django.conf import settings

from calls.persistence import metrics
from core.db_errors import describe, is_ambiguous

logger = logging.getLogger("calls.persistence")

LIMITED_MODE_LINE = "Running in limited mode without call logs persistence"

STARTING = "starting"
OPERATIONAL = "operational"
LIMITED = "limited"
STATES = (STARTING, OPERATIONAL, LIMITED)


@dataclass
class PersistenceStatus:
    state: str = STARTING
    engine: str = ""
    server_version: str | None = None
    attempts: int = 0
    last_error: str | None = None
    since: datetime | None = None

    def as_dict(self) -> dict:
        data = asdict(self)
        data["since"] = self.since.isoformat() if self.since else None
        return data


_lock = threading.Lock()
_status = PersistenceStatus(since=datetime.now(UTC))
_changed = threading.Condition(_lock)


def _publish_gauge(state: str) -> None:
    for name in STATES:
        metrics.persistence_state.labels(state=name).set(1 if name == state else 0)


_publish_gauge(STARTING)


def current() -> str:
    return _status.state


def status() -> PersistenceStatus:
    """A copy of the current status, safe to read without the lock."""
    with _lock:
        return PersistenceStatus(**asdict(_status))


def is_operational() -> bool:
    return _status.state == OPERATIONAL


def is_limited() -> bool:
    return _status.state == LIMITED


def set_engine(engine: str) -> None:
    with _lock:
        _status.engine = engine


def record_attempt(*, attempts: int, error: str | None = None, server_version: str | None = None) -> None:
    with _lock:
        _status.attempts = attempts
        if error is not None:
            _status.last_error = error
        if server_version is not None:
            _status.server_version = server_version


def transition(state: str, *, error: str | None = None) -> bool:
    """Move to ``state``; returns False when already there. Wakes anyone waiting for a change."""
    assert state in STATES
    with _changed:
        if _status.state == state:
            if error:
                _status.last_error = error
            return False
        _status.state = state
        _status.since = datetime.now(UTC)
        if error:
            _status.last_error = error
        if state == LIMITED:
            metrics.limited_mode_entries.inc()
        _publish_gauge(state)
        _changed.notify_all()
        return True


def engine_name(alias: str = "default") -> str:
    engine = settings.DATABASES[alias]["ENGINE"]
    if "cockroach" in engine:
        return "CockroachDB"
    if "postgresql" in engine:
        return "PostgreSQL"
    if "sqlite" in engine:
        return "SQLite"
    return engine.rsplit(".", 1)[-1]


_outage_listeners: list[Callable[[], None]] = []


def on_outage(listener: Callable[[], None]) -> None:
    """Call ``listener`` (no arguments, quick) whenever an outage is reported."""
    if listener not in _outage_listeners:
        _outage_listeners.append(listener)


def off_outage(listener: Callable[[], None]) -> None:
    if listener in _outage_listeners:
        _outage_listeners.remove(listener)


def report_outage(exc: BaseException) -> None:
    """A request met a connection error, or a commit whose outcome is unknown: open the breaker
    (once) and wake the prober. A call write is journaled meanwhile, and the replay (idempotent
    by natural key) settles it whichever way the commit went."""
    if current() == OPERATIONAL and transition(LIMITED, error=describe(exc)):
        if is_ambiguous(exc):
            logger.error("%s could not confirm a commit: %s", engine_name(), describe(exc))
        else:
            logger.error("%s became unreachable: %s", engine_name(), describe(exc))
        logger.warning(LIMITED_MODE_LINE)
    for listener in list(_outage_listeners):
        listener()


def wait_for(predicate, timeout: float) -> bool:
    """Block until ``predicate(current state)`` holds or ``timeout`` passes."""
    with _changed:
        return _changed.wait_for(lambda: predicate(_status.state), timeout=timeout)


def reset_for_tests(state: str = STARTING) -> None:
    with _changed:
        _status.state = state
        _status.engine = ""
        _status.server_version = None
        _status.attempts = 0
        _status.last_error = None
        _status.since = datetime.now(UTC)
        _publish_gauge(state)
        _changed.notify_all()
