"""The web client behaves like a phone (issue 18), seen in Chromium against the real service:
who is calling (initials and the group's name), toggles that show their state, one's initials
with the camera off, a roster of a group call (ringing, connecting, connected, reconnecting),
calling back from a missed call and from history, a missed-only history, a frozen service noticed
by the heartbeat, a phone layout where the self-view never covers the controls, and a system
notification for a call that rings in a background tab."""

from __future__ import annotations

import os
import signal
import time
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from bench.processes import wait_until
from bench.tcp_proxy import TcpProxy
from calls.models import Conversation
from tests.e2e.conftest import PHONE, _account
from tests.e2e.test_calls_in_browser import call_button, call_state, log_in, media_flowing
from tests.factories import make_conversation, make_user

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

GROUP_TITLE = "Design review"


@pytest.fixture
def carol(cast):
    """Carol, and a group conversation of Alice, Bob and Carol (made before the browser starts)."""
    alice_id, bob_id = cast.alice.user_id, cast.bob.user_id
    from django.contrib.auth import get_user_model

    users = get_user_model().objects
    user = make_user(username=f"carol{os.getpid()}", display_name="Carol Jones")
    group = make_conversation(
        members=[users.get(id=alice_id), users.get(id=bob_id), user], type=Conversation.Type.GROUP, title=GROUP_TITLE
    )
    account = _account(user)
    account.group_id = str(group.id)
    return account


def boxes_overlap(a: dict, b: dict) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def roster_entry(page, user_id):
    return page.locator(f'#roster [data-user-id="{user_id}"]')


@pytest.mark.service_env(CALL_RECONNECT_GRACE="20")
def test_a_group_call_names_the_group_shows_the_caller_initials_and_a_roster_of_everyone(
    carol, browser, cast, api, service, shots
):
    proxy = TcpProxy(target_host="127.0.0.1", target_port=service.port).start()
    try:
        alice = browser.person()
        bob = browser.person(base_url=f"http://127.0.0.1:{proxy.port}")  # Bob's network is the proxy
        log_in(alice, cast.alice)
        log_in(bob, cast.bob)

        call_button(alice, carol.group_id, "video").click()
        expect(alice.locator("#call-peer")).to_have_text(GROUP_TITLE)
        # Everyone rings: the roster says so, and each has a tile that says so.
        for account in (cast.bob, carol):
            expect(roster_entry(alice, account.user_id)).to_have_attribute("data-state", "ringing")
            tile = alice.locator(f'.remote-tile[data-user-id="{account.user_id}"]')
            expect(tile).to_have_attribute("data-state", "ringing")
            expect(tile.locator(".peer-state")).to_have_text("Ringing…")
        expect(roster_entry(alice, carol.user_id).locator(".roster-name")).to_have_text("Carol Jones")
        expect(roster_entry(alice, carol.user_id).locator(".roster-state")).to_have_text("Ringing…")
        shots.take(alice, "alice-group-call-everyone-ringing")

        panel = bob.locator("#incoming-call")
        expect(panel).to_be_visible()
        expect(bob.locator("#incoming-title")).to_have_text("Alice is calling")
        expect(bob.locator("#incoming-group")).to_have_text(GROUP_TITLE)
        expect(bob.locator("#incoming-group")).to_be_visible()
        expect(bob.locator("#incoming-kind")).to_have_text("Incoming group video call")
        expect(bob.locator("#incoming-avatar")).to_have_text("A")  # Alice's initials, not a plain disc
        shots.take(bob, "bob-incoming-group-call")
        call_id = panel.get_attribute("data-call-id")

        bob.locator("#accept-call").click()
        expect(roster_entry(alice, cast.bob.user_id)).to_have_attribute("data-state", "connected")
        expect(roster_entry(alice, carol.user_id)).to_have_attribute("data-state", "ringing")
        expect(roster_entry(bob, carol.user_id)).to_have_attribute("data-state", "ringing")
        expect(roster_entry(bob, cast.alice.user_id)).to_have_attribute("data-state", "connected")
        media_flowing(alice, video=True)
        shots.take(alice, "alice-bob-connected-carol-ringing")
        shots.take(bob, "bob-in-group-call-carol-ringing")

        # Carol answers from a device that never connects its media: answered, connecting.
        assert api(carol).post(f"/v1/calls/{call_id}/join").status_code == 200
        expect(roster_entry(alice, carol.user_id)).to_have_attribute("data-state", "connecting")
        expect(roster_entry(alice, carol.user_id).locator(".roster-state")).to_have_text("Connecting…")
        expect(alice.locator(f'.remote-tile[data-user-id="{carol.user_id}"]')).not_to_have_attribute(
            "data-state", "ringing"
        )
        shots.take(alice, "alice-carol-connecting")

        proxy.down()  # Bob's connection to the service drops: he is reconnecting
        expect(roster_entry(alice, cast.bob.user_id)).to_have_attribute("data-state", "reconnecting")
        expect(roster_entry(alice, cast.bob.user_id).locator(".roster-state")).to_have_text("Reconnecting…")
        shots.take(alice, "alice-bob-reconnecting")
        proxy.up()
        expect(roster_entry(alice, cast.bob.user_id)).to_have_attribute("data-state", "connected", timeout=25_000)
        shots.take(alice, "alice-bob-back")

        alice.locator("#hangup").click()
        call_state(alice).to_have_attribute("data-call-state", "idle", timeout=10_000)
    finally:
        proxy.stop()


@pytest.mark.service_env(CALL_RING_TIMEOUT="8")
def test_a_group_callee_who_never_answers_is_shown_as_such_and_the_call_goes_on(carol, browser, cast, shots):
    alice = browser.person()
    bob = browser.person()
    log_in(alice, cast.alice)
    log_in(bob, cast.bob)
    call_button(alice, carol.group_id, "audio").click()
    bob.locator("#accept-call").click()
    expect(roster_entry(alice, cast.bob.user_id)).to_have_attribute("data-state", "connected")
    expect(roster_entry(alice, carol.user_id)).to_have_attribute("data-state", "ringing")

    # Carol's ring times out; only her devices hear call_missed, Alice's page reads the call again.
    expect(roster_entry(alice, carol.user_id)).to_have_attribute("data-state", "missed", timeout=20_000)
    expect(roster_entry(alice, carol.user_id).locator(".roster-state")).to_have_text("Didn't answer")
    expect(roster_entry(bob, carol.user_id)).to_have_attribute("data-state", "missed")
    expect(alice.locator(f'.remote-tile[data-user-id="{carol.user_id}"]')).to_have_count(0)
    call_state(alice).to_have_attribute("data-call-state", "connected")
    expect(roster_entry(alice, cast.bob.user_id)).to_have_attribute("data-state", "connected")
    # an audio call: the camera button says there is none, rather than "Camera on"
    expect(alice.locator("#roster .roster-name")).to_have_text(["Bob", "Carol Jones"])  # the order stays
    expect(alice.locator("#toggle-video")).to_be_disabled()
    expect(alice.locator("#toggle-video .label")).to_have_text("No camera")
    shots.take(alice, "alice-carol-did-not-answer")
    alice.locator("#hangup").click()
    call_state(alice).to_have_attribute("data-call-state", "idle", timeout=10_000)


def test_toggles_show_their_state_and_a_camera_off_shows_ones_initials_and_the_phone_layout_keeps_clear(
    browser, cast, shots
):
    alice = browser.person()
    bob = browser.person(viewport=PHONE)
    log_in(alice, cast.alice)
    log_in(bob, cast.bob)
    call_button(alice, cast.conversation_id, "video").click()
    bob.locator("#accept-call").click()
    for page in (alice, bob):
        call_state(page).to_have_attribute("data-call-state", "connected")
        media_flowing(page, video=True)

    mic, cam = alice.locator("#toggle-audio"), alice.locator("#toggle-video")
    for button, label, icon in ((mic, "Mic on", "icon-mic"), (cam, "Camera on", "icon-cam")):
        expect(button).to_have_attribute("aria-pressed", "false")
        expect(button.locator(".label")).to_have_text(label)
        expect(button.locator(".icon")).to_have_class(f"icon {icon}")
    expect(alice.locator("#local-avatar")).to_be_hidden()
    shots.take(alice, "alice-mic-and-camera-on")

    mic.click()
    cam.click()
    for button, label, icon in ((mic, "Mic off", "icon-mic-off"), (cam, "Camera off", "icon-cam-off")):
        expect(button).to_have_attribute("aria-pressed", "true")
        expect(button.locator(".label")).to_have_text(label)
        expect(button.locator(".icon")).to_have_class(f"icon {icon}")
    assert mic.get_attribute("title") == "Unmute the microphone"
    assert cam.get_attribute("title") == "Turn the camera on"
    # One's own tile: initials where the picture was, the picture hidden.
    expect(alice.locator("#local-avatar")).to_be_visible()
    expect(alice.locator("#local-avatar")).to_have_text("A")
    expect(alice.locator("#local-video")).to_be_hidden()
    alice_tile = bob.locator(f'.remote-tile[data-user-id="{cast.alice.user_id}"]')
    expect(alice_tile).to_have_attribute("data-video-muted", "true")
    expect(alice_tile.locator(".cam-badge")).to_be_visible()
    shots.take(alice, "alice-mic-and-camera-off")
    shots.take(bob, "bob-phone-sees-alice-camera-off")

    # The phone: the self-view stays clear of the controls and of what the remote tile says.
    bob.locator("#toggle-video").click()
    expect(bob.locator("#local-avatar")).to_be_visible()
    self_view = bob.locator("#local-tile").bounding_box()
    viewport = bob.viewport_size
    assert self_view["x"] >= 0 and self_view["x"] + self_view["width"] <= viewport["width"]
    assert self_view["y"] + self_view["height"] <= viewport["height"]
    for selector in ("#call-controls", "#hangup", "#toggle-audio", "#toggle-video", "#call-status"):
        assert not boxes_overlap(self_view, bob.locator(selector).bounding_box()), selector
    for part in (".tile-label", ".peer-state", ".cam-badge"):
        box = alice_tile.locator(part).bounding_box()
        assert box is None or not boxes_overlap(self_view, box), part
    shots.take(bob, "bob-phone-layout-camera-off")

    mic.click()
    cam.click()
    expect(mic.locator(".label")).to_have_text("Mic on")
    expect(cam.locator(".label")).to_have_text("Camera on")
    expect(alice.locator("#local-avatar")).to_be_hidden()
    alice.locator("#hangup").click()
    call_state(alice).to_have_attribute("data-call-state", "idle", timeout=10_000)


@pytest.mark.service_env(CALL_RING_TIMEOUT="3")
def test_a_missed_call_is_called_back_from_its_message_and_from_history_filtered_to_missed(browser, cast, api, shots):
    alice = browser.person()
    bob = browser.person(viewport=PHONE)
    log_in(alice, cast.alice)
    log_in(bob, cast.bob)

    call_button(alice, cast.conversation_id, "audio").click()
    expect(bob.locator("#incoming-call")).to_be_visible()
    missed_id = bob.locator("#incoming-call").get_attribute("data-call-id")
    message = bob.locator(".toast").filter(has_text="Missed call from Alice")
    expect(message).to_have_count(1, timeout=20_000)
    expect(message.locator(".toast-action")).to_have_text("Call back")
    shots.take(bob, "bob-missed-call-message")
    call_state(alice).to_have_attribute("data-call-state", "idle", timeout=10_000)

    message.locator(".toast-action").click()  # Bob calls Alice back, the same kind of call
    expect(bob.locator("#call-status")).to_have_text("Calling Alice…")
    expect(alice.locator("#incoming-kind")).to_have_text("Incoming audio call")
    expect(alice.locator("#incoming-title")).to_have_text("Bob is calling")
    shots.take(alice, "alice-called-back")
    alice.locator("#decline-call").click()
    expect(bob.locator("#call-status")).to_have_text("Alice declined the call")
    call_state(bob).to_have_attribute("data-call-state", "idle", timeout=10_000)

    bob.locator("#tab-history").click()
    rows = bob.locator("#history-list .call-row")
    expect(rows).to_have_count(2)
    labels = bob.locator("#analytics .stat-label")
    expect(labels).to_have_text(
        ["Calls", "Answered", "Missed", "Answer rate", "Avg. answered call", "Total talk time"], ignore_case=True
    )
    assert "Average length of an answered call" in bob.locator('[data-stat="avg_duration"]').get_attribute("title")
    shots.take(bob, "bob-history-all")

    bob.locator("#history-missed").check()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-call-id", missed_id)
    expect(rows.first.locator(".status")).to_have_text("Missed")
    shots.take(bob, "bob-history-missed-only")

    for row in rows.all():  # on the phone every row's Call back stays on screen
        box = row.locator(".call-back").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    rows.first.locator(".call-back").click()  # call back from history
    expect(bob.locator("#call-status")).to_have_text("Calling Alice…")
    expect(alice.locator("#incoming-title")).to_have_text("Bob is calling")
    bob.locator("#hangup").click()
    expect(alice.locator("#incoming-call")).to_be_hidden()
    calls = api(cast.bob).get("/v1/calls").json()["data"]["calls"]
    assert [c["caller_id"] for c in calls] == [cast.bob.user_id, cast.bob.user_id, cast.alice.user_id]
    assert all(c["conversation_id"] == cast.conversation_id and c["call_type"] == "audio" for c in calls)


def test_a_frozen_service_is_noticed_within_30_s_and_the_page_recovers(browser, cast, service, shots):
    alice = browser.person()
    log_in(alice, cast.alice)
    pid = service.process.pid
    os.kill(pid, signal.SIGSTOP)  # the process stays, its sockets stay open, nothing answers
    stopped = time.monotonic()
    try:
        expect(alice.locator("#banner")).to_contain_text("The service is not answering.", timeout=30_000)
        noticed = time.monotonic() - stopped
        print(f"frozen service noticed after {noticed:.1f} s")
        assert noticed < 30
        expect(alice.locator("#connection")).to_have_attribute("data-state", "retrying")
        expect(alice.locator("#connection")).to_have_text("not answering")
        shots.take(alice, "alice-service-frozen")
    finally:
        os.kill(pid, signal.SIGCONT)
    expect(alice.locator("#connection")).to_have_attribute("data-state", "online", timeout=45_000)
    expect(alice.locator("#banner")).to_be_hidden()
    shots.take(alice, "alice-service-answers-again")


# Records every notification the page makes, and lets the test hide the tab: headless Chromium
# reports every tab visible, so "in the background" is set here (as a minimised window would).
# It also reports "denied" to a context not granted the permission, never "default" (not asked
# yet): NEVER_ASKED stands in for a browser that has not asked, and answers "granted" when asked.
NOTIFICATION_SPY = """
(() => {
  window.__notifications = [];
  window.__permissionRequests = 0;
  window.__tabHidden = false;
  const Real = window.Notification;
  class Recorded extends Real {
    constructor(title, options = {}) {
      super(title, options);
      const entry = { title, body: options.body, tag: options.tag, closed: false };
      window.__notifications.push(entry);
      const close = this.close.bind(this);
      this.close = () => { entry.closed = true; close(); };
    }
    static get permission() { return window.__askedAnswer ?? (window.__neverAsked ? "default" : Real.permission); }
    static requestPermission(...args) {
      window.__permissionRequests += 1;
      if (window.__neverAsked) { window.__askedAnswer = "granted"; return Promise.resolve("granted"); }
      return Real.requestPermission(...args);
    }
  }
  window.Notification = Recorded;
  const visibility = () => (window.__tabHidden ? "hidden" : "visible");
  Object.defineProperty(Document.prototype, "visibilityState", { get: visibility });
  Object.defineProperty(Document.prototype, "hidden", { get: () => window.__tabHidden });
  window.__hideTab = (hidden) => {
    window.__tabHidden = hidden;
    document.dispatchEvent(new Event("visibilitychange"));
  };
})();
"""


NEVER_ASKED = "window.__neverAsked = true;\n"


def test_a_call_to_a_background_tab_shows_a_notification_and_permission_is_asked_only_on_a_click(browser, cast, shots):
    alice = browser.person()
    bob = browser.person(permissions=["notifications"], init_script=NOTIFICATION_SPY)
    newcomer = browser.person(viewport=PHONE, init_script=NEVER_ASKED + NOTIFICATION_SPY)  # never asked
    log_in(alice, cast.alice)
    log_in(bob, cast.bob)

    # A visible tab rings on screen only.
    call_button(alice, cast.conversation_id, "video").click()
    expect(bob.locator("#incoming-call")).to_be_visible()
    assert bob.evaluate("window.__notifications") == []
    # It goes to the background while ringing: the notification comes.
    bob.evaluate("window.__hideTab(true)")
    wait_until(lambda: bob.evaluate("window.__notifications.length") == 1, timeout=5, message="a notification")
    shown = bob.evaluate("window.__notifications[0]")
    assert shown["title"] == "Alice is calling" and shown["body"] == "Incoming video call"
    assert shown["closed"] is False
    alice.locator("#hangup").click()  # she gives up: the notification goes with the ring
    wait_until(lambda: bob.evaluate("window.__notifications[0].closed"), timeout=10, message="notification closed")

    # A call that comes while the tab is already in the background.
    call_button(alice, cast.conversation_id, "audio").click()
    wait_until(lambda: bob.evaluate("window.__notifications.length") == 2, timeout=10, message="a second one")
    assert bob.evaluate("window.__notifications[1].body") == "Incoming audio call"
    bob.evaluate("window.__hideTab(false)")
    shots.take(bob, "bob-back-to-the-ringing-tab")
    bob.locator("#decline-call").click()
    wait_until(lambda: bob.evaluate("window.__notifications[1].closed"), timeout=10, message="closed on decline")
    assert bob.evaluate("window.__permissionRequests") == 0  # already granted: never asked again
    expect(bob.locator("#notify-calls")).to_be_hidden()

    # Someone never asked: nothing asks on load; "Call alerts" asks when pressed.
    log_in(newcomer, cast.bob)
    newcomer.wait_for_timeout(500)
    assert newcomer.evaluate("window.__permissionRequests") == 0
    expect(newcomer.locator("#notify-calls")).to_be_visible()
    for selector in ("#notify-calls", "#logout", "#me-name"):  # all of the top bar fits on the phone
        box = newcomer.locator(selector).bounding_box()
        assert box["width"] > 0 and box["x"] + box["width"] <= PHONE["width"], selector
    shots.take(newcomer, "newcomer-call-alerts-offered")
    newcomer.locator("#notify-calls").click()
    wait_until(lambda: newcomer.evaluate("window.__permissionRequests") == 1, timeout=5, message="asked on click")
    expect(newcomer.locator(".toast").filter(has_text="You will be alerted to calls")).to_have_count(1)
    expect(newcomer.locator("#notify-calls")).to_be_hidden()
    shots.take(newcomer, "newcomer-call-alerts-on")


def test_the_conversation_list_follows_next_cursor_when_the_service_pages_it(carol, browser, cast, shots):
    """GET /v1/conversations comes in pages (``next_cursor`` beside the list): the client reads
    them all. The service's real answer is split in two here, the second page behind a cursor."""
    alice = browser.person()
    asked = []

    def paged(route, request):
        asked.append(request.url)
        second = "cursor=" in request.url
        response = route.fetch(url=request.url.split("?")[0])
        body = response.json()
        conversations = body["data"]["conversations"]
        assert len(conversations) == 2
        page = conversations[1:] if second else conversations[:1]
        body["data"] = {"conversations": page, "next_cursor": None if second else "page-2"}
        route.fulfill(response=response, json=body)

    alice.route(lambda url: urlsplit(url).path == "/v1/conversations", paged)
    log_in(alice, cast.alice)
    titles = alice.locator("#conversation-list .conversation .row-title")
    expect(titles).to_have_count(2)
    assert sorted(titles.all_inner_texts()) == sorted([GROUP_TITLE, "Bob"])
    assert [url.split("/v1")[1] for url in asked] == ["/conversations", "/conversations?cursor=page-2"]
    shots.take(alice, "alice-conversations-from-two-pages")
