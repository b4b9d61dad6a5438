"""The log provider (development's default) and the none provider."""

import logging

import pytest

from calls.events import EventType
from push import notifications
from push.delivery import push_send
from push.listener import on_call_event
from push.provider_choice import build_provider, install_provider
from push.providers import LogProvider, NullProvider
from push.services import device_register
from push.worker import get_worker
from tests.factories import make_user
from tests.push.factories import call_dict, event, in_a_minute

pytestmark = [pytest.mark.portable, pytest.mark.django_db]


def test_development_defaults_to_the_log_provider(settings):
    settings.PUSH_PROVIDER = "log"
    assert isinstance(build_provider(), LogProvider)


def test_the_log_provider_logs_what_it_would_send_and_sends_nothing(caplog):
    callee = make_user()
    device_register(user_id=callee.id, token="android-fid-123456", platform="android")
    call = call_dict(caller_id="caller-id", callees=[callee.id])

    with caplog.at_level(logging.INFO, logger="push.providers"):
        report = push_send(
            user_ids=[callee.id],
            notification=notifications.incoming_call(call=call, caller_name="Ada", expires_at=in_a_minute()),
            provider=LogProvider(),
        )

    assert report.sent == ["android-fid-123456"]
    [record] = [r for r in caplog.records if r.name == "push.providers"]
    assert "incoming_call" in record.getMessage()
    assert call["call_id"] in record.getMessage()
    assert "android-…" in record.getMessage()  # the first 8 characters
    assert "android-fid-123456" not in record.getMessage()  # tokens are not logged whole


def test_with_pushes_off_call_events_queue_nothing(monkeypatch):
    previous = install_provider(NullProvider())
    submitted = []
    monkeypatch.setattr(get_worker(), "submit", lambda key, job: submitted.append(key))
    try:
        on_call_event(event(EventType.INCOMING_CALL, call_dict(caller_id="c", callees=["a"])))
    finally:
        install_provider(previous)
    assert submitted == []
