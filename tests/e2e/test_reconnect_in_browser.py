"""The record follows the wire, seen from two browsers: a signaling connection cut mid-call
resumes and the call carries on; a browser closed without hanging up ends the call for the other
as connection_lost."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from bench.processes import wait_until
from bench.tcp_proxy import TcpProxy
from tests.e2e.test_calls_in_browser import call_button, call_state, log_in, media_flowing, the_call

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def in_a_call(alice, bob, cast):
    call_button(alice, cast.conversation_id, "video").click()
    expect(bob.locator("#incoming-call")).to_be_visible()
    call_id = bob.locator("#incoming-call").get_attribute("data-call-id")
    bob.locator("#accept-call").click()
    for page in (alice, bob):
        call_state(page).to_have_attribute("data-call-state", "connected")
        media_flowing(page, video=True)
    return call_id


@pytest.mark.service_env(CALL_RECONNECT_GRACE="20")
def test_a_cut_signaling_connection_resumes_and_the_call_carries_on(browser, cast, api, shots, service):
    proxy = TcpProxy(target_host="127.0.0.1", target_port=service.port).start()
    try:
        alice = browser.person()
        bob = browser.person(base_url=f"http://127.0.0.1:{proxy.port}")  # Bob's network is the proxy
        log_in(alice, cast.alice)
        log_in(bob, cast.bob)
        call_id = in_a_call(alice, bob, cast)

        proxy.down()  # Bob's connections to the service are cut; the media between them is not
        bob_tile = alice.locator(f'.remote-tile[data-user-id="{cast.bob.user_id}"]')
        expect(bob_tile).to_have_attribute("data-state", "reconnecting")
        expect(bob_tile.locator(".peer-state")).to_have_text("Reconnecting…")
        expect(bob_tile.locator(".peer-state")).to_be_visible()
        expect(alice.locator("#call-status")).to_have_text("Bob is reconnecting…")
        call_state(bob).to_have_attribute("data-call-state", "reconnecting")
        expect(bob.locator("#call-status")).to_have_text("Reconnecting…")
        shots.take(alice, "alice-sees-bob-reconnecting")
        shots.take(bob, "bob-reconnecting")
        bob.wait_for_timeout(3000)
        assert the_call(api(cast.alice), call_id)["status"] == "active"  # the grace, not an end

        proxy.up()
        call_state(bob).to_have_attribute("data-call-state", "connected", timeout=20_000)
        expect(bob_tile).not_to_have_attribute("data-state", "reconnecting", timeout=20_000)
        expect(alice.locator("#call-status")).to_have_text("Connected")
        media_flowing(alice, video=True)
        media_flowing(bob, video=True)
        shots.take(alice, "alice-after-bob-resumed")
        shots.take(bob, "bob-resumed")
        call = the_call(api(cast.alice), call_id)
        assert call["status"] == "active"
        assert all(p["state"] == "joined" for p in call["participants"])

        bob.locator("#hangup").click()
        for page in (alice, bob):
            expect(page.locator("#call-status")).to_contain_text("Call ended")
        ended = wait_until(
            lambda: (c := the_call(api(cast.alice), call_id))["status"] == "ended" and c,
            timeout=10,
            message="the call ended",
        )
        assert ended["end_reason"] == "hangup" and ended["duration_seconds"] >= 3
    finally:
        proxy.stop()


@pytest.mark.service_env(CALL_RECONNECT_GRACE="3")
def test_a_browser_closed_mid_call_ends_it_as_connection_lost_for_the_other(browser, cast, api, shots):
    alice = browser.person()
    bob = browser.person()
    log_in(alice, cast.alice)
    log_in(bob, cast.bob)
    call_id = in_a_call(alice, bob, cast)
    bob.wait_for_timeout(1500)

    bob.context.close()  # the tab and its sockets go without a word: no hang-up over REST
    # (Alice's tile for Bob may show the media connection's own state first; the reconnecting
    # tile is the cut-connection test's. Here what counts is how the call ends.)
    shots.take(alice, "alice-right-after-bob-closed")
    expect(alice.locator("#call-status")).to_contain_text("Call ended: connection lost", timeout=20_000)
    # Bob's tile says the call ended with it, not that his media is still reconnecting.
    expect(alice.locator(f'#remote-grid [data-user-id="{cast.bob.user_id}"] .peer-state')).to_have_text("Call ended")
    shots.take(alice, "alice-call-ended-connection-lost")
    call_state(alice).to_have_attribute("data-call-state", "idle", timeout=10_000)

    call = the_call(api(cast.alice), call_id)
    assert call["status"] == "ended" and call["end_reason"] == "connection_lost"
    assert call["duration"] == call["duration_seconds"] >= 1
    bob_row = next(p for p in call["participants"] if p["user_id"] == cast.bob.user_id)
    assert bob_row["leave_reason"] == "connection_lost"

    alice.locator("#tab-history").click()
    row = alice.locator(f'.call-row[data-call-id="{call_id}"]')
    expect(row).to_have_attribute("data-end-reason", "connection_lost")
    expect(row.locator(".status")).to_have_text("Answered · connection lost")
    shots.take(alice, "alice-history-connection-lost")
