"""Call events to pushes, end to end: calls.events.dispatch -> the listener subscribed at
start-up -> the push worker -> firebase-admin -> the fake FCM server."""

import threading
import time

import pytest

from calls import events
from calls.events import EventType
from push.provider_choice import install_provider
from push.providers import DeliveryOutcome, PushProvider
from push.services import device_register
from tests.factories import make_user
from tests.push.conftest import wait_for_pushes
from tests.push.factories import call_dict, event

# The worker threads read devices through their own connections: the rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def group_call_with_devices():
    """Caller Ada rings Bob (phone + tablet) and Cy (phone + browser); everyone has devices.

    Returns ``(ada, bob, cy, call)``.
    """
    ada = make_user(display_name="Ada")
    bob, cy = make_user(), make_user()
    for user, token, platform in [
        (ada, "ada-phone", "android"),
        (bob, "bob-phone", "android"),
        (bob, "bob-tablet", "ios"),
        (cy, "cy-phone", "ios"),
        (cy, "cy-browser", "web"),
    ]:
        device_register(user_id=user.id, token=token, platform=platform)
    call = call_dict(caller_id=ada.id, callees=[bob.id, cy.id])
    return ada, bob, cy, call


def kinds(fcm_server, fid):
    return [(m["data"]["type"], m["data"].get("reason", "")) for m in fcm_server.messages(fid)]


def test_a_new_call_rings_every_device_of_every_callee(firebase_provider, fcm_server, group_call_with_devices):
    ada, _, _, call = group_call_with_devices

    events.dispatch(event(EventType.INCOMING_CALL, call, actor_id=ada.id))
    wait_for_pushes()

    rung = {m["fid"] for m in fcm_server.messages()}
    assert rung == {"bob-phone", "bob-tablet", "cy-phone", "cy-browser"}
    message = fcm_server.messages("bob-tablet")[0]
    assert message["data"]["caller_name"] == "Ada"  # looked up by the worker
    assert message["data"]["caller_id"] == str(ada.id)
    assert message["data"]["call_id"] == call["call_id"]


def test_answering_stops_the_other_devices_of_who_answered(firebase_provider, fcm_server, group_call_with_devices):
    ada, bob, cy, call = group_call_with_devices
    events.dispatch(event(EventType.INCOMING_CALL, call, actor_id=ada.id))
    answered = call_dict(caller_id=ada.id, callees={str(bob.id): "joined", str(cy.id): "ringing"}, status="active")
    answered["call_id"] = call["call_id"]

    events.dispatch(event(EventType.CALL_ACCEPTED, answered, actor_id=bob.id))
    wait_for_pushes()

    for fid in ("bob-phone", "bob-tablet"):
        assert kinds(fcm_server, fid) == [("incoming_call", ""), ("call_cancelled", "answered_elsewhere")]
    for fid in ("cy-phone", "cy-browser"):  # still ringing in the group call
        assert kinds(fcm_server, fid) == [("incoming_call", "")]


def test_declining_stops_the_decliners_other_devices(firebase_provider, fcm_server, group_call_with_devices):
    _, bob, _, call = group_call_with_devices
    declined = {**call, "participants": [*call["participants"]]}
    declined["participants"][1] = {**declined["participants"][1], "state": "declined"}

    events.dispatch(event(EventType.CALL_DECLINED, declined, actor_id=bob.id))
    wait_for_pushes()

    assert kinds(fcm_server, "bob-phone") == [("call_cancelled", "declined")]
    assert kinds(fcm_server, "bob-tablet") == [("call_cancelled", "declined")]
    assert fcm_server.messages("cy-phone") == []


def test_the_caller_cancelling_stops_every_ringing_device(firebase_provider, fcm_server, group_call_with_devices):
    ada, bob, cy, call = group_call_with_devices
    events.dispatch(event(EventType.INCOMING_CALL, call, actor_id=ada.id))
    cancelled = {**call, "status": "cancelled", "end_reason": "cancelled"}

    events.dispatch(event(EventType.CALL_CANCELLED, cancelled, actor_id=ada.id, stopped_ringing_ids=[bob.id, cy.id]))
    wait_for_pushes()

    for fid in ("bob-phone", "bob-tablet", "cy-phone", "cy-browser"):
        assert kinds(fcm_server, fid) == [("incoming_call", ""), ("call_cancelled", "cancelled")]
    assert fcm_server.messages("ada-phone") == []


def test_a_ringing_timeout_stops_the_ringing_and_reports_a_missed_call(
    firebase_provider, fcm_server, group_call_with_devices
):
    ada, bob, cy, call = group_call_with_devices
    events.dispatch(event(EventType.INCOMING_CALL, call, actor_id=ada.id))
    missed = {**call, "status": "missed", "end_reason": "no_answer"}

    events.dispatch(event(EventType.CALL_MISSED, missed, stopped_ringing_ids=[bob.id, cy.id]))
    wait_for_pushes()

    for fid in ("bob-phone", "bob-tablet", "cy-phone", "cy-browser"):
        assert kinds(fcm_server, fid) == [("incoming_call", ""), ("call_cancelled", "missed"), ("missed_call", "")]
    assert fcm_server.messages("bob-phone")[-1]["data"]["caller_name"] == "Ada"


def test_the_end_of_a_call_is_pushed_to_the_other_participants(firebase_provider, fcm_server, group_call_with_devices):
    _, bob, _, call = group_call_with_devices
    ended = {**call, "status": "ended", "end_reason": "hangup", "duration_seconds": 12}

    events.dispatch(event(EventType.CALL_ENDED, ended, actor_id=bob.id))
    wait_for_pushes()

    assert {m["fid"] for m in fcm_server.messages()} == {"ada-phone", "cy-phone", "cy-browser"}
    assert all(m["data"]["type"] == "call_ended" for m in fcm_server.messages())


class BlockingProvider(PushProvider):
    """Holds every send until released, to show the caller of dispatch never waits for it."""

    name = "blocking"

    def __init__(self):
        self.release = threading.Event()
        self.sent = []

    def send(self, notification, targets):
        assert self.release.wait(timeout=10)
        self.sent += [(notification.kind, t.token) for t in targets]
        return [DeliveryOutcome.SENT] * len(targets)


class BrokenProvider(PushProvider):
    name = "broken"

    def send(self, notification, targets):
        raise RuntimeError("provider bug")


@pytest.fixture
def use_provider():
    previous = []

    def use(provider):
        previous.append(install_provider(provider))
        return provider

    yield use
    for provider in reversed(previous):
        install_provider(provider)


def test_dispatching_never_waits_for_the_push(use_provider, group_call_with_devices):
    ada, _, _, call = group_call_with_devices
    provider = use_provider(BlockingProvider())

    started = time.monotonic()
    events.dispatch(event(EventType.INCOMING_CALL, call, actor_id=ada.id))
    assert time.monotonic() - started < 0.5
    assert provider.sent == []

    provider.release.set()
    wait_for_pushes()
    assert {token for _, token in provider.sent} == {"bob-phone", "bob-tablet", "cy-phone", "cy-browser"}


def test_a_failing_provider_never_reaches_the_caller_of_dispatch(use_provider, group_call_with_devices, caplog):
    ada, _, _, call = group_call_with_devices
    use_provider(BrokenProvider())

    events.dispatch(event(EventType.INCOMING_CALL, call, actor_id=ada.id))
    wait_for_pushes()

    assert "Push incoming_call for call" in caplog.text
    assert "provider bug" in caplog.text


def test_an_unknown_caller_is_named_secureconnect(firebase_provider, fcm_server, group_call_with_devices):
    _, _, _, call = group_call_with_devices
    stranger = {**call, "caller_id": "00000000-0000-0000-0000-000000000000"}

    events.dispatch(event(EventType.INCOMING_CALL, stranger))
    wait_for_pushes()

    assert {m["data"]["caller_name"] for m in fcm_server.messages()} == {"SecureConnect"}
