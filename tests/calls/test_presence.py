"""What presence decides for calls (calls.presence, calls.services.call_connections_*): the
backstop for an instance that died, and answered calls nobody connects to."""

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.utils import timezone

from calls import presence, services
from calls.models import Call, CallParticipant
from tests.signaling.conftest import make_call_with

pytestmark = pytest.mark.django_db(transaction=True)


def call_row(call_id) -> Call:
    return Call.objects.get(pk=call_id)


def test_the_backstop_ends_a_call_whose_instance_died_at_the_last_moment_seen(transactional_db, settings):
    """A dead instance leaves presence entries nobody renews and no holder: the sweep settles it."""
    settings.CALL_RECONNECT_GRACE = 1
    call = make_call_with(callees=1)
    services.call_join(call_id=call.id, user_id=call.callees[0].id)
    minute_ago = timezone.now() - timedelta(seconds=60)
    Call.objects.filter(pk=call.id).update(started_at=minute_ago, answered_at=minute_ago)
    CallParticipant.objects.filter(call_id=call.id).update(joined_at=minute_ago, call_started_at=minute_ago)
    last_renewal = time.time() - settings.PRESENCE_TTL - 5  # no renewal since: the instance died
    for person in (call.caller, call.callees[0]):
        presence.presence_socket_opened(call_id=call.id, user_id=person.id, channel_name="x!dead", now=last_renewal)
    assert services.call_connections_sweep() == 1
    row = call_row(call.id)
    assert row.status == Call.Status.ENDED and row.end_reason == Call.EndReason.CONNECTION_LOST
    assert abs((row.ended_at - datetime.fromtimestamp(last_renewal, tz=UTC)).total_seconds()) < 0.001
    assert row.duration_seconds == int(last_renewal - minute_ago.timestamp())
    assert services.call_connections_sweep() == 0  # settled once


def test_an_answered_call_nobody_connects_to_ends_at_its_answer(transactional_db, settings):
    settings.CALL_CONNECT_TIMEOUT = 0.2
    call = make_call_with(callees=1)
    services.call_join(call_id=call.id, user_id=call.callees[0].id)
    assert services.call_connections_sweep() == 0  # not yet
    time.sleep(0.3)
    assert services.call_connections_sweep() == 1
    row = call_row(call.id)
    assert row.end_reason == Call.EndReason.CONNECTION_LOST
    assert row.ended_at == row.answered_at and row.duration_seconds == 0


def test_a_renewal_that_crosses_a_drop_does_not_bring_the_socket_back(settings):
    """The registry renews what it saw a moment ago; a socket that dropped meanwhile stays gone."""
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    settings.CHANNEL_LAYER_PREFIX = f"test-presence-{uuid.uuid4().hex[:8]}"
    presence.reset_for_tests()
    call_id = uuid.uuid4()
    try:
        presence.presence_socket_opened(call_id=call_id, user_id="bob", channel_name="c!1")
        presence.presence_socket_dropped(
            call_id=call_id, user_id="bob", channel_name="c!1", at=time.time(), hold_until=None
        )
        presence.presence_sockets_renewed([(call_id, "bob", "c!1")])
        assert not presence.presence_of_calls([call_id])[str(call_id)].of("bob").connected
        presence.presence_socket_opened(call_id=call_id, user_id="bob", channel_name="c!2")
        presence.presence_sockets_renewed([(call_id, "bob", "c!2")])
        assert presence.presence_of_calls([call_id])[str(call_id)].of("bob").live_sockets == 1
    finally:
        redis.Redis().delete(f"{settings.CHANNEL_LAYER_PREFIX}:presence:{call_id}")
        presence.reset_for_tests()
