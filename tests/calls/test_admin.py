"""The call-history admin that support staff read."""

import csv
import io
import os
import re
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import User
from calls.admin import human_duration
from calls.models import Call, CallParticipant
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
    for expected in (call.short_id, "alice@example.test", "2:05", "Hang-up", "Ended"):
        assert expected in body


def result_row(response, call) -> str:
    """The changelist's table row of ``call`` (HTML)."""
    body = response.content.decode()
    row = re.search(rf"<tr>(?:(?!</tr>).)*{call.short_id}(?:(?!</tr>).)*</tr>", body, re.S)
    assert row, f"no row for {call.short_id}"
    return row.group(0)


def test_changelist_names_the_caller_and_every_callee_with_their_outcome(staff_client):
    alice = make_user(display_name="Alice Liddell", email="alice.names@example.test")
    bob = make_user(display_name="Bob Builder")
    carol = make_user(display_name="", email="carol.unnamed@example.test")
    call = make_call(caller=alice, callees=[bob, carol], talk_seconds=60)
    _, response = changelist_queries(staff_client)
    row = result_row(response, call)
    assert "Alice Liddell" in row and 'title="alice.names@example.test"' in row
    assert "Bob Builder</span> (left)" in row
    assert "carol.unnamed@example.test</span> (missed)" in row, "no display name: the email"
    assert str(bob.id) not in row and str(carol.id) not in row
    assert list(response.context["cl"].list_display[1:5]) == ["short_id", "started_at", "duration", "end_reason"]


def test_times_show_seconds_and_the_time_zone(staff_client, settings):
    settings.ADMIN_TIME_ZONE = "Europe/Berlin"
    alice, bob = make_user(), make_user()
    call = make_call(
        caller=alice, callees=[bob], talk_seconds=5, started_at=datetime(2026, 1, 15, 9, 30, 7, tzinfo=UTC)
    )
    _, response = changelist_queries(staff_client)
    assert "2026-01-15 10:30:07 CET" in result_row(response, call)
    page = staff_client.get(reverse("admin:calls_call_change", args=[call.id])).content.decode()
    assert "2026-01-15 10:30:07 CET" in page, "started"
    assert "2026-01-15 10:30:10 CET" in page, "answered three seconds later"


def test_times_are_utc_by_default(staff_client):
    call = make_call(caller=make_user(), callees=[make_user()], started_at=datetime(2026, 7, 1, 23, 59, 58, tzinfo=UTC))
    _, response = changelist_queries(staff_client)
    assert "2026-07-01 23:59:58 UTC" in result_row(response, call)


def test_the_admin_time_zone_leaves_the_api_in_utc(settings):
    settings.ADMIN_TIME_ZONE = "Asia/Tokyo"
    alice, bob = make_user(), make_user()
    call = make_call(caller=alice, callees=[bob], started_at=datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC))
    from tests.factories import api_client_for

    data = api_client_for(alice).get(f"/v1/calls/{call.id}").json()["data"]
    assert data["started_at"] == "2026-03-01T12:00:00Z"
    me = api_client_for(alice).get("/v1/users/me").json()["data"]
    assert me["created_at"].endswith("Z") or me["created_at"].endswith("+00:00")


def test_a_time_zone_that_does_not_exist_stops_start_up():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "secureconnect.settings", "TIME_ZONE": "Mars/Olympus"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "TIME_ZONE must be an IANA time zone such as UTC or Europe/Berlin, not 'Mars/Olympus'" in result.stderr


def test_change_page_names_the_participants_and_no_uuid(staff_client):
    alice = make_user(display_name="Alice Page", email="alice.page@example.test")
    bob = make_user(display_name="Bob Page", email="bob.page@example.test")
    call = make_call(caller=alice, callees=[bob], talk_seconds=5)
    page = staff_client.get(reverse("admin:calls_call_change", args=[call.id])).content.decode()
    assert "Alice Page &lt;alice.page@example.test&gt;" in page
    assert "Bob Page &lt;bob.page@example.test&gt;" in page
    assert str(alice.id) not in page and str(bob.id) not in page


def test_a_callee_who_never_answered_has_no_left_time_of_someone_elses_hang_up(staff_client):
    alice, bob, carol = make_user(), make_user(), make_user(display_name="Carol Never")
    call = make_call(caller=alice, callees=[bob, carol], talk_seconds=30)
    carol_row = CallParticipant.objects.get(call=call, user=carol)
    assert carol_row.state == "missed" and carol_row.left_at == call.ended_at, "what the lifecycle stored"
    response = staff_client.get(reverse("admin:calls_call_change", args=[call.id]))
    inline = response.context["inline_admin_formsets"][0]
    shown = {}
    for form in inline:
        cells = shown.setdefault(form.original.user_id, {})
        for fieldset in form:
            for line in fieldset:
                cells.update({field.field["name"]: field.contents() for field in line})
    assert shown[carol.id]["left"] == "-"
    assert shown[carol.id]["joined_at"] == "-"
    assert shown[bob.id]["left"] != "-", "who joined shows when she left"


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
    from push.services import device_register

    owner = make_user(email="phone-owner@example.test")
    device_register(user_id=owner.id, token="fcm-token-for-admin-test", platform="android")
    response = staff_client.get(reverse("admin:push_device_changelist"), {"q": "phone-owner"})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


# --- read-only history, the support group, CSV injection ------------------------------------------


@pytest.fixture
def support_client(client):
    from django.contrib.auth.models import Group

    person = make_user(username="helpdesk", is_staff=True)
    person.groups.add(Group.objects.get(name="support"))
    client.force_login(person)
    return client


def test_the_migration_gives_the_support_group_view_permissions_only():
    from django.contrib.auth.models import Group

    permissions = set(Group.objects.get(name="support").permissions.values_list("content_type__app_label", "codename"))
    assert permissions == {
        ("calls", "view_call"),
        ("calls", "view_callparticipant"),
        ("calls", "view_conversation"),
        ("calls", "view_conversationparticipant"),
        ("accounts", "view_user"),
    }


def test_support_can_read_calls_conversations_and_users(support_client):
    alice = make_user(display_name="Alice Support")
    call = make_call(caller=alice, callees=[make_user()], talk_seconds=5)
    for url in (
        reverse("admin:calls_call_changelist"),
        reverse("admin:calls_call_change", args=[call.id]),
        reverse("admin:calls_conversation_changelist"),
        reverse("admin:calls_conversation_change", args=[call.conversation_id]),
        reverse("admin:accounts_user_changelist"),
        reverse("admin:accounts_user_change", args=[alice.id]),
    ):
        assert support_client.get(url).status_code == 200, url
    page = support_client.get(reverse("admin:calls_call_change", args=[call.id])).content.decode()
    assert "Alice Support" in page, "the participants inline is there"


def test_support_cannot_change_or_delete_anything(support_client):
    alice = make_user(display_name="Untouched")
    call = make_call(caller=alice, callees=[make_user()], talk_seconds=5)
    refused = [
        support_client.post(reverse("admin:calls_call_change", args=[call.id]), {"status": "failed"}),
        support_client.post(reverse("admin:calls_call_delete", args=[call.id]), {"post": "yes"}),
        support_client.post(reverse("admin:calls_conversation_delete", args=[call.conversation_id]), {"post": "yes"}),
        support_client.post(reverse("admin:accounts_user_change", args=[alice.id]), {"display_name": "Changed"}),
        support_client.post(reverse("admin:accounts_user_delete", args=[alice.id]), {"post": "yes"}),
    ]
    assert [r.status_code for r in refused] == [403] * 5
    bulk = support_client.post(
        reverse("admin:calls_call_changelist"), {"action": "delete_selected", "_selected_action": [str(call.id)]}
    )
    assert bulk.status_code in (200, 302)
    assert Call.objects.filter(pk=call.pk, status="ended").exists()
    alice.refresh_from_db()
    assert alice.display_name == "Untouched"


@pytest.mark.parametrize("field", ["call_type", "status", "end_reason"])
def test_even_a_superuser_cannot_edit_a_calls_history(staff_client, field):
    call = make_call(caller=make_user(), callees=[make_user()], talk_seconds=5)
    page = staff_client.get(reverse("admin:calls_call_change", args=[call.id]))
    assert page.status_code == 200 and not page.context["has_change_permission"]
    assert field not in page.context["adminform"].form.fields, "shown read-only, not as an input"
    response = staff_client.post(
        reverse("admin:calls_call_change", args=[call.id]),
        {"call_type": "audio", "status": "failed", "end_reason": "busy"},
    )
    assert response.status_code == 403
    stored = Call.objects.get(pk=call.pk)
    assert (stored.call_type, stored.status, stored.end_reason) == ("video", "ended", "hangup")


def test_nobody_adds_calls_in_the_admin(staff_client):
    assert staff_client.get(reverse("admin:calls_call_add")).status_code == 403


def test_staff_without_the_delete_permission_cannot_delete_a_call(client):
    from django.contrib.auth.models import Permission

    clerk = make_user(is_staff=True)
    clerk.user_permissions.add(
        Permission.objects.get(codename="view_call"), Permission.objects.get(codename="change_call")
    )
    client.force_login(clerk)
    call = make_call(caller=make_user(), callees=[make_user()], talk_seconds=5)
    assert client.post(reverse("admin:calls_call_delete", args=[call.id]), {"post": "yes"}).status_code == 403
    assert Call.objects.filter(pk=call.pk).exists()
    clerk.user_permissions.add(Permission.objects.get(codename="delete_call"))
    client.force_login(clerk)
    assert client.post(reverse("admin:calls_call_delete", args=[call.id]), {"post": "yes"}).status_code == 302
    assert not Call.objects.filter(pk=call.pk).exists(), "deleting is its own permission, given on purpose"


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_export_defuses_cells_a_spreadsheet_would_run(staff_client, prefix):
    email = f"{prefix}cmd|'/Ccalc'!A0@example.test"
    caller, callee = make_user(), make_user()
    # Stored as is (registration strips whitespace, so tab and CR only reach the table this way).
    User.objects.filter(pk=caller.pk).update(email=email)
    User.objects.filter(pk=callee.pk).update(email=f"{prefix}callee@example.test")
    call = make_call(caller=caller, callees=[callee])
    response = staff_client.post(
        reverse("admin:calls_call_changelist"), {"action": "export_csv", "_selected_action": [str(call.id)]}
    )
    (row,) = csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode(), newline=""))
    assert row["caller_email"] == "'" + email
    assert row["participants"].startswith("'" + prefix)
    assert row["call_id"] == str(call.id), "ordinary cells are unchanged"
