"""History cursors: only a cursor the service issued is ever followed. Anything else (tampered,
re-encoded, hand-made with an extreme time-zone offset) is 400 VALIDATION_ERROR on every
engine, never an empty page or a 500."""

import base64
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import api_client_for, make_call, make_conversation, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.portable]


@pytest.fixture
def history():
    """A user with three calls, and the cursor the service gives after the first one."""
    me, peer = make_user(), make_user()
    conversation = make_conversation(members=[me, peer])
    now = timezone.now()
    for minutes in range(3):
        make_call(caller=me, callees=[peer], conversation=conversation, started_at=now - timedelta(minutes=minutes))
    client = api_client_for(me)
    cursor = client.get("/v1/calls", {"limit": 1}).json()["data"]["next_cursor"]
    return client, cursor


def unsigned(text: str) -> str:
    """A cursor as the previous version made them: base64 of ``started_at|call_id``, unsigned."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def assert_refused(response):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert "cursor" in body["error"]["details"]


def test_hand_made_cursors_with_extreme_time_zone_offsets_are_refused(history):
    client, _ = history
    for offset in ["+23:59", "-23:59", "+99:99", "+24:00", "+00:00:00.999999", "Z"]:
        cursor = unsigned(f"9999-12-31T23:59:59.999999{offset}|{uuid.uuid4()}")
        assert_refused(client.get("/v1/calls", {"cursor": cursor}))


def test_a_hand_made_cursor_of_the_old_unsigned_format_is_refused(history):
    client, _ = history
    cursor = unsigned(f"{timezone.now().isoformat()}|{uuid.uuid4()}")
    assert_refused(client.get("/v1/calls", {"cursor": cursor}))


def test_a_tampered_cursor_is_refused_and_the_issued_one_followed(history):
    client, cursor = history
    followed = client.get("/v1/calls", {"limit": 5, "cursor": cursor})
    assert followed.status_code == 200
    assert len(followed.json()["data"]["calls"]) == 2
    payload, signature = cursor.rsplit(":", 1)
    position = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    moved = position.replace(position[:4], str(int(position[:4]) + 1), 1)  # a year later: every call
    tampered = f"{unsigned(moved)}:{signature}"
    assert_refused(client.get("/v1/calls", {"cursor": tampered}))


def test_a_re_encoded_cursor_is_refused(history):
    client, cursor = history
    payload, signature = cursor.rsplit(":", 1)
    padded = payload + "=" * (-len(payload) % 4 or 4)
    assert_refused(client.get("/v1/calls", {"cursor": f"{padded}:{signature}"}))
    raw_signature = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    assert_refused(client.get("/v1/calls", {"cursor": f"{payload}:{base64.b64encode(raw_signature).decode()}"}))
    assert_refused(client.get("/v1/calls", {"cursor": f"{payload}:{raw_signature.hex()}"}))
