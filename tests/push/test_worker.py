"""The push worker: off the caller's thread, in order per call, bounded."""

import threading
import time

import pytest

from push.worker import PushWorker

pytestmark = pytest.mark.portable


def test_the_jobs_of_one_call_run_in_the_order_they_were_queued():
    worker = PushWorker(lanes=4, queue_limit=100)
    ran = []

    for n in range(30):
        assert worker.submit("call-1", lambda n=n: (time.sleep(0.001 * (n % 3)), ran.append(n)))

    assert worker.wait_idle(timeout=10)
    assert ran == list(range(30))


def test_a_full_queue_drops_new_jobs_instead_of_making_the_caller_wait():
    worker = PushWorker(lanes=1, queue_limit=2)
    release = threading.Event()
    worker.submit("call-1", lambda: release.wait(timeout=10))
    worker.submit("call-2", lambda: None)

    started = time.monotonic()
    accepted = worker.submit("call-3", lambda: None)

    assert not accepted
    assert time.monotonic() - started < 0.5
    release.set()
    assert worker.wait_idle(timeout=10)
    assert worker.submit("call-4", lambda: None)  # room again
    assert worker.wait_idle(timeout=10)


def test_a_failing_job_is_logged_and_the_next_one_still_runs(caplog):
    worker = PushWorker(lanes=1, queue_limit=10)
    ran = []

    worker.submit("call-1", lambda: 1 / 0)
    worker.submit("call-1", lambda: ran.append("next"))

    assert worker.wait_idle(timeout=10)
    assert ran == ["next"]
    assert "Push job failed" in caplog.text
