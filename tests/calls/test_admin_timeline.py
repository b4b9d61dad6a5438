"""The admin's call page: the timeline (when, with seconds and the admin's time zone; who, by
name; what, in words) beside the participants by name, read-only."""

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from calls import services
from calls.admin import human_duration
from calls.models import CallTimelineEvent
from tests.factories import make_call, make_conversation, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.portable]


@pytest.fixture
def staff_client(client):
    client.force_login(make_user(username="support-timeline", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def support_client(client):
    from django.contrib.auth.models import Group

    person = make_user(username="helpdesk-timeline", is_staff=True)
    person.groups.add(Group.objects.get(name="support"))
    client.force_login(person)
    return client


@pytest.fixture
def talked():
    """Alice calls Bob, Bob answers and mutes, Alice hangs up: a call made through the services."""
    alice = make_user(display_name="Alice Liddell", email="alice.timeline@example.test")
    bob = make_user(display_name="Bob Builder", email="bob.timeline@example.test")
    conversation = make_conversation(members=[alice, bob])
    call_id = services.call_initiate(
        caller_id=alice.id, conversation_id=conversation.id, callee_ids=[bob.id], call_type="audio"
    ).record.call.id
    services.call_join(call_id=call_id, user_id=bob.id)
    services.call_set_media(call_id=call_id, user_id=bob.id, is_muted=True)
    services.call_leave(call_id=call_id, user_id=alice.id)
    return alice, bob, call_id


def change_page(client, call_id) -> str:
    response = client.get(reverse("admin:calls_call_change", args=[call_id]))
    assert response.status_code == 200
    return response.content.decode()


def timeline_rows(page: str) -> list[list[str]]:
    """The cells of each row of the page's timeline table, as text."""
    table = re.search(r'<table class="call-timeline">(.*?)</table>', page, re.S)
    assert table, "no timeline table on the page"
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)[1:]  # the first is the header
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)] for row in rows
    ]


def shown_time(at, zone: str) -> str:
    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S %Z")


def test_the_call_page_shows_the_timeline_with_seconds_the_zone_and_names(staff_client, talked, settings):
    settings.ADMIN_TIME_ZONE = "Europe/Berlin"
    alice, bob, call_id = talked
    page = change_page(staff_client, call_id)
    rows = timeline_rows(page)
    events = list(CallTimelineEvent.objects.filter(call_id=call_id).order_by("seq"))
    alice_named, bob_named = (
        "Alice Liddell &lt;alice.timeline@example.test&gt;",
        "Bob Builder &lt;bob.timeline@example.test&gt;",
    )
    assert [(row[2], row[3]) for row in rows] == [
        (alice_named, "Call started (audio)"),
        (bob_named, "Rang"),
        (bob_named, "Answered"),
        (bob_named, "Muted"),
        (alice_named, "Left: Hang-up"),
        (alice_named, "Call ended: Hang-up"),
    ]
    assert [row[0] for row in rows] == [shown_time(e.at, "Europe/Berlin") for e in events]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d CES?T", row[0]) for row in rows), "seconds and zone"
    assert all(row[1].startswith("+0:0") for row in rows), "seconds since the call began"
    assert str(alice.id) not in page and str(bob.id) not in page


def test_the_timeline_is_in_utc_unless_the_admin_is_told_otherwise(staff_client, talked):
    _, _, call_id = talked
    first = CallTimelineEvent.objects.get(call_id=call_id, seq=0)
    assert timeline_rows(change_page(staff_client, call_id))[0][0] == shown_time(first.at, "UTC")


def test_the_participants_are_named_beside_the_timeline(staff_client, talked):
    _, _, call_id = talked
    response = staff_client.get(reverse("admin:calls_call_change", args=[call_id]))
    fieldsets = {name: list(options["fields"]) for name, options in response.context["adminform"].fieldsets}
    assert fieldsets["What happened"] == ["participant_names", "call_timeline"]
    page = response.content.decode()
    names = page.index("Alice Liddell &lt;alice.timeline@example.test&gt; (caller, left (Hang-up))")
    assert names < page.index('<table class="call-timeline">')
    assert "Bob Builder &lt;bob.timeline@example.test&gt; (callee, left (Hang-up))" in page


def test_what_the_service_decided_alone_says_so(staff_client, settings):
    alice, carol = make_user(display_name="Alice Caller"), make_user(display_name="Carol Away")
    call = services.call_initiate(
        caller_id=alice.id,
        conversation_id=make_conversation(members=[alice, carol]).id,
        callee_ids=[carol.id],
        call_type="video",
    ).record.call
    services.call_expire(call_id=call.id, now=call.started_at + timedelta(seconds=settings.CALL_RING_TIMEOUT + 5))
    rows = timeline_rows(change_page(staff_client, call.id))
    assert [row[3] for row in rows] == ["Call started (video)", "Rang", "Missed", "Call ended: No answer"]
    assert rows[-1][2] == "the service" and rows[-2][2].startswith("Carol Away")
    assert rows[-1][1] == "+" + human_duration(settings.CALL_RING_TIMEOUT), "ended at the ringing deadline"


def test_support_staff_read_the_timeline_and_cannot_change_it(support_client, talked):
    _, _, call_id = talked
    assert len(timeline_rows(change_page(support_client, call_id))) == 6
    response = support_client.post(reverse("admin:calls_call_change", args=[call_id]), {"timeline": ""})
    assert response.status_code == 403
    assert CallTimelineEvent.objects.filter(call_id=call_id).count() == 6


def test_a_call_from_before_the_timeline_says_it_has_none(staff_client):
    call = make_call(caller=make_user(), callees=[make_user()], talk_seconds=5)  # rows written directly
    assert "No events recorded" in change_page(staff_client, call.id)


def test_the_call_page_runs_a_fixed_number_of_queries_whatever_the_events(staff_client, talked):
    alice, bob, call_id = talked

    def queries(call_id):
        with CaptureQueriesContext(connection) as ctx:
            change_page(staff_client, call_id)
        return len(ctx.captured_queries)

    few = queries(call_id)
    conversation = make_conversation(members=[alice, bob])
    busy = services.call_initiate(
        caller_id=alice.id, conversation_id=conversation.id, callee_ids=[bob.id], call_type="video"
    ).record.call.id
    services.call_join(call_id=busy, user_id=bob.id)
    for i in range(30):
        services.call_set_media(call_id=busy, user_id=(alice, bob)[i % 2].id, is_muted=i % 4 < 2)
    services.call_end(call_id=busy, user_id=bob.id)
    assert CallTimelineEvent.objects.filter(call_id=busy).count() == 34
    assert queries(busy) == few


def test_the_timeline_shows_time_in_the_zone_of_a_summer_date(staff_client, talked, settings):
    settings.ADMIN_TIME_ZONE = "America/New_York"
    _, _, call_id = talked
    event = CallTimelineEvent.objects.get(call_id=call_id, seq=0)
    summer = datetime(2026, 7, 1, 12, 0, 5, tzinfo=UTC)
    CallTimelineEvent.objects.filter(pk=event.pk).update(at=summer)
    assert timeline_rows(change_page(staff_client, call_id))[0][0] == "2026-07-01 08:00:05 EDT"
