"""Push jobs run here, off the request path, on a few threads with a bounded queue.

Jobs for the same call go to the same single-thread lane, so a call's pushes leave in the
order their events happened (an incoming_call is never overtaken by its call_cancelled).
When PUSH_QUEUE_LIMIT jobs are waiting, new ones are dropped with a warning rather than
letting memory grow or a request wait.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)


class PushWorker:
    def __init__(self, *, lanes: int, queue_limit: int):
        self._lanes = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"push-{n}") for n in range(lanes)]
        self._queue_limit = queue_limit
        self._pending = 0
        self._changed = threading.Condition()

    def submit(self, key: str, job: Callable[[], None]) -> bool:
        """Queue ``job`` on the lane for ``key``; False (and nothing queued) when full or shut down."""
        with self._changed:
            if self._pending >= self._queue_limit:
                logger.warning("Push queue full (%d jobs): dropping a push job for %s", self._pending, key)
                return False
            self._pending += 1
        lane = self._lanes[zlib.crc32(key.encode()) % len(self._lanes)]
        try:
            lane.submit(self._run, job)
        except RuntimeError:  # shut down (interpreter exit)
            self._done()
            return False
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued job has finished; False if ``timeout`` seconds pass first."""
        with self._changed:
            return self._changed.wait_for(lambda: self._pending == 0, timeout=timeout)

    def _run(self, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception:
            logger.exception("Push job failed")
        finally:
            # This thread's database connections: close them rather than leave them idle.
            connections.close_all()
            self._done()

    def _done(self) -> None:
        with self._changed:
            self._pending -= 1
            self._changed.notify_all()


_worker: PushWorker | None = None
_worker_lock = threading.Lock()


def get_worker() -> PushWorker:
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = PushWorker(lanes=settings.PUSH_WORKERS, queue_limit=settings.PUSH_QUEUE_LIMIT)
        return _worker
