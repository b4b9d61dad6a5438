"""call_analytics: one aggregate over the user's participant rows gives the same answer as
counting the user's calls one by one, in group calls too, and within a time window."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from calls import selectors
from calls.models import Call
from tests.factories import make_call, make_conversation, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.portable]


@pytest.fixture
def world():
    """Alice calls Bob, Bob calls Alice, a group call where Alice is one of three callees,
    calls of other people, and one call of Alice's outside the window used below."""
    alice, bob, carol, dave = (make_user() for _ in range(4))
    now = timezone.now()
    pair = make_conversation(members=[alice, bob])
    group = make_conversation(members=[bob, alice, carol, dave], type="group")
    make_call(caller=alice, callees=[bob], conversation=pair, talk_seconds=10, started_at=now - timedelta(hours=1))
    make_call(caller=bob, callees=[alice], conversation=pair, talk_seconds=40, started_at=now - timedelta(hours=2))
    make_call(caller=alice, callees=[bob], conversation=pair, status="missed", started_at=now - timedelta(hours=3))
    make_call(
        caller=bob,
        callees=[carol, alice, dave],
        conversation=group,
        talk_seconds=25,
        call_type="audio",
        started_at=now - timedelta(hours=4),
    )
    make_call(caller=carol, callees=[dave], talk_seconds=999, started_at=now - timedelta(hours=1))
    make_call(caller=alice, callees=[bob], conversation=pair, talk_seconds=70, started_at=now - timedelta(days=3))
    return alice, now


def expected_for(calls: list[Call]) -> dict:
    answered = sorted(c.duration_seconds for c in calls if c.answered_at is not None)

    def nearest_rank(fraction):
        return answered[max(math.ceil(fraction * len(answered)) - 1, 0)] if answered else 0

    return {
        "total": len(calls),
        "by_status": {s: sum(c.status == s for c in calls) for s in Call.Status.values},
        "by_type": {t: sum(c.call_type == t for c in calls) for t in Call.Type.values},
        "answered": len(answered),
        "missed": sum(c.status == "missed" for c in calls),
        "answer_rate": round(len(answered) / len(calls), 4) if calls else 0.0,
        "avg_duration_seconds": round(sum(answered) / len(answered), 2) if answered else 0.0,
        "total_talk_seconds": sum(c.duration_seconds for c in calls),
        "p50_duration_seconds": nearest_rank(0.50),
        "p95_duration_seconds": nearest_rank(0.95),
    }


def test_a_users_analytics_count_each_of_their_calls_once_group_calls_included(world):
    alice, _ = world
    mine = list(Call.objects.filter(participants__user=alice))
    assert len(mine) == 5
    assert selectors.call_analytics(user_id=alice.id) == expected_for(mine)


def test_the_window_applies_to_when_the_call_started(world):
    alice, now = world
    since = now - timedelta(days=1)
    mine = [c for c in Call.objects.filter(participants__user=alice) if c.started_at >= since]
    assert len(mine) == 4
    assert selectors.call_analytics(user_id=alice.id, since=since) == expected_for(mine)
    assert selectors.call_analytics(user_id=alice.id, until=now - timedelta(days=5))["total"] == 0


def test_analytics_of_every_call_count_each_call_once(world):
    assert selectors.call_analytics() == expected_for(list(Call.objects.all()))


def test_a_users_analytics_take_three_queries(world):
    alice, _ = world
    with CaptureQueriesContext(connection) as captured:
        selectors.call_analytics(user_id=alice.id)
    assert len(captured) == 3  # the aggregate, then the two percentiles
