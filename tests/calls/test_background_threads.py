"""The serving process's ringing-timeout sweep: calls go missed with nobody calling in."""

from datetime import timedelta

import pytest
from django.utils import timezone

from bench.processes import wait_until
from calls.background_threads import ExpirySweeper
from calls.models import Call
from tests.factories import make_call, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_sweep_marks_unanswered_calls_missed_by_itself(settings):
    settings.CALL_RING_TIMEOUT = 5
    settings.CALL_EXPIRY_INTERVAL = 0.1
    overdue = make_call(caller=make_user(), callees=[make_user()], started_at=timezone.now() - timedelta(seconds=6))
    fresh = make_call(caller=make_user(), callees=[make_user()])
    sweeper = ExpirySweeper()
    sweeper.start()
    try:
        wait_until(lambda: Call.objects.get(pk=overdue.pk).status == "missed", timeout=10, message="swept")
    finally:
        sweeper.stop()
    swept = Call.objects.get(pk=overdue.pk)
    assert swept.end_reason == "no_answer"
    assert swept.ended_at == swept.started_at + timedelta(seconds=5), "missed at the deadline, not when swept"
    assert Call.objects.get(pk=fresh.pk).status == "ringing"
