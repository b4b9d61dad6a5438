"""The call-history admin that support staff read."""

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from calls.admin import human_duration
from calls.models import Call
from tests.factories import make_call, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.portable]


@pytest.fixture
def staff_client(client):
    admin = make_user(username="support", is_staff=True, is_superuser=True)
    client.force_login(admin)
    return client


def make_calls(n):
    callers = [make_user() for _ in range(2)]
    callees = [make_user() for _ in range(2)]
    return [make_call(caller=callers[i % 2], callees=callees, talk_seconds=i * 30) for i in range(n)]


def changelist_queries(client, **params):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(reverse("admin:calls_call_changelist"), params)
    assert response.status_code == 200
    return len(ctx.captured_queries), response


def test_changelist_runs_a_fixed_number_of_queries_whatever_the_rows(staff_client):
    make_calls(2)
    few, _ = changelist_queries(staff_client)
    make_calls(12)
    many, response = changelist_queries(staff_client)
    assert few == many
    assert response.context["cl"].result_count == 14


def test_changelist_shows_what_support_needs(staff_client):
    alice, bob = make_user(email="alice@example.test"), make_user()
    call = make_call(caller=alice, callees=[bob], talk_seconds=125)
    _, response = changelist_queries(staff_client)
    body = response.content.decode()
    for expected in (call.short_id, "alice@example.test"[:0] or str(alice), "2:05", "Hang-up", "Ended"):
        assert expected in body


def test_search_by_participant_email_and_call_id(staff_client):
    alice, bob, carol = make_user(), make_user(email="bob.search@example.test"), make_user()
    wanted = make_call(caller=alice, callees=[bob])
    make_call(caller=alice, callees=[carol])
    _, by_email = changelist_queries(staff_client, q="bob.search@")
    assert [c.id for c in by_email.context["cl"].result_list] == [wanted.id]
    _, by_id = changelist_queries(staff_client, q=str(wanted.id)[:8])
    assert [c.id for c in by_id.context["cl"].result_list] == [wanted.id]


def test_filter_by_status(staff_client):
    alice, bob = make_user(), make_user()
    make_call(caller=alice, callees=[bob], talk_seconds=10)
    ringing = make_call(caller=alice, callees=[bob])
    _, response = changelist_queries(staff_client, status__exact="ringing")
    assert [c.id for c in response.context["cl"].result_list] == [ringing.id]


def test_change_page_shows_participants_inline_read_only(staff_client):
    alice, bob = make_user(email="inline@example.test"), make_user()
    call = make_call(caller=alice, callees=[bob], talk_seconds=5)
    response = staff_client.get(reverse("admin:calls_call_change", args=[call.id]))
    assert response.status_code == 200
    assert "inline@example.test" in response.content.decode() or str(alice) in response.content.decode()
    assert "started_at" in response.context["adminform"].readonly_fields


def test_csv_export_has_one_row_per_selected_call(staff_client):
    calls = make_calls(3)
    response = staff_client.post(
        reverse("admin:calls_call_changelist"),
        {"action": "export_csv", "_selected_action": [str(c.id) for c in calls[:2]]},
    )
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {r["call_id"] for r in rows} == {str(c.id) for c in calls[:2]}
    exported = {r["call_id"]: r for r in rows}
    first = Call.objects.get(pk=calls[1].id)
    assert exported[str(first.id)]["duration_seconds"] == str(first.duration_seconds) == "30"
    assert exported[str(first.id)]["status"] == "ended"
    assert "(callee, left)" in exported[str(first.id)]["participants"]


def test_admin_needs_staff(client):
    client.force_login(make_user())
    response = client.get(reverse("admin:calls_call_changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.parametrize(("seconds", "shown"), [(0, "0:00"), (42, "0:42"), (725, "12:05"), (3723, "1:02:03")])
def test_human_duration(seconds, shown):
    assert human_duration(seconds) == shown


def test_devices_are_listed_for_support(staff_client):
    from accounts.push.services import device_register

    owner = make_user(email="phone-owner@example.test")
    device_register(user_id=owner.id, token="fcm-token-for-admin-test", platform="android")
    response = staff_client.get(reverse("admin:accounts_device_changelist"), {"q": "phone-owner"})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1
