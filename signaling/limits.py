"""Per-process connection caps and per-socket message rates."""

from __future__ import annotations

import time

from django.conf import settings

from signaling import metrics


class ConnectionSlots:
    """How many sockets of one kind this process holds, against the limit in ``setting``.

    Consumers all run on the server's one event loop and ``acquire``/``release`` never await,
    so the count needs no lock. A socket takes a slot on connect and gives it back on
    disconnect, whether it was accepted or refused after taking it."""

    def __init__(self, socket: str, setting: str):
        self.socket = socket
        self.setting = setting
        self.in_use = 0

    @property
    def limit(self) -> int:
        return getattr(settings, self.setting)

    def acquire(self) -> bool:
        if self.in_use >= self.limit:
            return False
        self.in_use += 1
        metrics.open_sockets.labels(socket=self.socket).set(self.in_use)
        return True

    def release(self) -> None:
        self.in_use = max(self.in_use - 1, 0)
        metrics.open_sockets.labels(socket=self.socket).set(self.in_use)


signaling_slots = ConnectionSlots("signaling", "WS_MAX_SIGNALING_CONNECTIONS")
events_slots = ConnectionSlots("events", "WS_MAX_EVENTS_CONNECTIONS")


class TokenBucket:
    """``rate`` tokens a second, holding at most ``burst``; each message takes one."""

    __slots__ = ("burst", "clock", "rate", "tokens", "updated")

    def __init__(self, *, rate: float, burst: int, clock=time.monotonic):
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
