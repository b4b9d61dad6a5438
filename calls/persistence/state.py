"""The persistence state of this process, in one place.

``starting``: the start-up check has not settled yet. ``operational``: writes go to the
database. ``limited``: the database is away; call writes go to the spool, and the supervisor
probes until it can replay them and return to ``operational``.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from calls.persistence import metrics

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
