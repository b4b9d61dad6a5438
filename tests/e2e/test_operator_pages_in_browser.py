"""Pages operators open in a browser, in Chromium at 1280x800: the calls list as support staff
see it (every column that answers "what happened to this call" in view beside the filters,
people by name, times with seconds and the zone) and the API schema (shown, not downloaded).
Screenshots in test-artifacts/e2e/<test>/."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import DESKTOP
from tests.factories import make_call, make_conversation, make_user

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def admin_log_in(page, account):
    page.goto("/admin/login/?next=/admin/calls/call/")
    page.locator("#id_username").fill(account.email)
    page.locator("#id_password").fill(account.password)
    page.locator("input[type=submit]").click()
    expect(page.locator("#result_list")).to_be_visible()


@pytest.fixture
def history(cast):
    """A week of calls with long names: a group call whose third member never answered, and more."""
    from accounts.models import User

    alice, bob = (User.objects.get(pk=a.user_id) for a in (cast.alice, cast.bob))
    carol = make_user(display_name="Carol Longname-Featherstonehaugh", email="carol.featherstonehaugh@example.test")
    group = make_conversation(members=[alice, bob, carol], type="group", title="Demo team")
    start = datetime(2026, 11, 30, 8, 15, 42, tzinfo=UTC)
    calls = [make_call(caller=alice, callees=[bob, carol], conversation=group, started_at=start, talk_seconds=754)]
    for n in range(6):
        calls.append(
            make_call(caller=bob, callees=[alice], started_at=start - timedelta(hours=n + 1), talk_seconds=n * 61)
        )
    calls.append(make_call(caller=carol, callees=[alice], started_at=start - timedelta(hours=9)))
    return calls


@pytest.mark.service_env(TIME_ZONE="Europe/Berlin")
def test_calls_list_at_1280_shows_duration_and_end_reason_names_and_zoned_seconds(history, browser, cast, shots):
    page = browser.person(viewport=DESKTOP)
    admin_log_in(page, cast.staff)
    shots.take(page, "calls-list-1280")

    visible_until = page.locator("#changelist-filter").bounding_box()["x"]
    for column in ("duration", "end_reason", "status", "caller_name", "callee_names"):
        header = page.locator(f"#result_list thead th.column-{column}")
        box = header.bounding_box()
        assert box is not None and box["x"] + box["width"] <= visible_until, f"{column} is hidden under the filters"

    group_call = page.locator("#result_list tbody tr", has_text=history[0].short_id)
    expect(group_call.locator("td.field-duration")).to_have_text("12:34")
    expect(group_call.locator("td.field-end_reason")).to_have_text("Hang-up")
    expect(group_call.locator("td.field-started_at")).to_have_text("2026-11-30 09:15:42 CET")
    expect(group_call.locator("td.field-caller_name")).to_have_text("Alice")
    expect(group_call.locator("td.field-callee_names")).to_have_text(
        "Bob (left), Carol Longname-Featherstonehaugh (missed)"
    )

    group_call.locator("th.field-short_id a").click()
    expect(page.locator("h1")).to_contain_text("View call")
    shots.take(page, "call-page-1280")
    page.locator(".inline-group").scroll_into_view_if_needed()
    shots.take(page, "call-page-participants")
    carol_row = page.locator(".inline-related tbody tr", has_text="Carol Longname-Featherstonehaugh")
    expect(carol_row.locator("td.field-state")).to_have_text("Missed")
    expect(carol_row.locator("td.field-left")).to_have_text("-")
    bob_row = page.locator(".inline-related tbody tr", has_text="Bob")
    expect(bob_row.locator("td.field-left")).to_have_text("2026-11-30 09:28:19 CET")


def test_the_schema_opens_as_a_page_in_the_browser(browser, shots):
    page = browser.person(viewport=DESKTOP)
    response = page.goto("/v1/schema")  # a download would raise here ("Download is starting")
    assert response.status == 200 and response.headers["content-type"].startswith("text/html")
    expect(page.locator("pre")).to_contain_text("openapi: 3.0.3")
    expect(page.locator("pre")).to_contain_text("/v1/calls/initiate:")
    shots.take(page, "schema")
