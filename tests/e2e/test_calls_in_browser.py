"""Two people, two browser contexts, the real service: a conversation started by typing someone's
username, a call that rings, connects with real WebRTC media through the service's signaling, and
lands in history and in the admin; a declined call and an unanswered one say so on both sides.
Everyone is shown by their display name, learnt from the service (never "User 1a2b3c4d")."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from bench.processes import wait_until
from tests.e2e.conftest import PHONE

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def log_in(page, account):
    page.goto("/app/")
    form = page.locator("#login-form")
    form.locator("input[name=email]").fill(account.email)
    form.locator("input[name=password]").fill(account.password)
    form.locator("button[type=submit]").click()
    expect(page.locator("body")).to_have_attribute("data-screen", "home")
    expect(page.locator("#connection")).to_have_attribute("data-state", "online")
    # the conversation list has been read (a test that stops the service next must not race it)
    expect(page.locator("#conversation-list > *").first).to_be_attached()
    expect(page.locator("#conversation-list")).not_to_have_attribute("aria-busy", "true")


def start_conversation(page, who: str) -> None:
    """Type ``who`` (an email, a username or a user id) under New conversation and create it."""
    details = page.locator(".new-conversation")
    if details.get_attribute("open") is None:
        details.locator("summary").click()
    form = page.locator("#conversation-form")
    form.locator("input[name=who]").fill(who)
    form.locator("button[type=submit]").click()


def call_button(page, conversation_id, call_type):
    return page.locator(f'[data-conversation-id="{conversation_id}"] button[data-call-type="{call_type}"]')


def call_state(page):
    return expect(page.locator("body"))


def peer_stats(page) -> list[dict]:
    return page.evaluate("() => window.secureconnect.stats()")


def media_flowing(page, *, video: bool) -> list[dict]:
    """Every peer connection of the page is connected (and decoding video frames)."""

    def check():
        stats = peer_stats(page)
        ok = stats and all(
            s["connectionState"] == "connected" and (s["framesDecoded"] > 0 if video else True) for s in stats
        )
        return stats if ok else None

    return wait_until(check, timeout=20, message="media flowing")


def calls_of(client) -> list[dict]:
    response = client.get("/v1/calls")
    assert response.status_code == 200, response.text
    return response.json()["data"]["calls"]


def the_call(client, call_id) -> dict:
    return next(c for c in calls_of(client) if c["call_id"] == call_id)


@pytest.mark.parametrize("cast", [pytest.param({"conversation": False}, id="no-conversation-yet")], indirect=True)
def test_conversation_by_username_then_a_video_call_rings_connects_mutes_hangs_up_and_is_in_history_and_admin(
    browser, cast, api, shots
):
    alice = browser.person()
    bob = browser.person(viewport=PHONE)
    bob_laptop = browser.person()  # Bob's second device rings too, and stops when he answers on the phone
    log_in(alice, cast.alice)
    log_in(bob, cast.bob)
    log_in(bob_laptop, cast.bob)
    # The laptop's read of a conversation is held until released below: it must ring all the same.
    held = []
    bob_laptop.route("**/v1/conversations/*", lambda route: held.append(route))
    # Bob's pages have loaded an empty list: the conversation Alice makes next is new to them, so
    # they learn her name only when her call comes (in their own browser contexts).
    expect(bob.locator("#conversation-list .empty")).to_be_visible()
    shots.take(bob, "bob-conversations-phone")

    start_conversation(alice, cast.bob.username)
    card = alice.locator("#conversation-list .conversation")
    expect(card).to_have_count(1)
    expect(card.locator(".row-title")).to_have_text("Bob")  # the display name, not the username
    expect(alice.locator(".toast").filter(has_text="Conversation with Bob created")).to_have_count(1)
    conversation_id = card.get_attribute("data-conversation-id")
    shots.take(alice, "alice-conversation-by-username")

    call_button(alice, conversation_id, "video").click()
    call_state(alice).to_have_attribute("data-call-state", "outgoing")
    expect(alice.locator("#call-status")).to_have_text("Calling Bob…")
    expect(alice.locator("#call-peer")).to_have_text("Bob")
    expect(bob.locator("#incoming-call")).to_be_visible()
    call_state(bob).to_have_attribute("data-ringing", "true")
    expect(bob.locator("#incoming-title")).to_have_text("Alice is calling")
    expect(bob.locator("#incoming-kind")).to_have_text("Incoming video call")
    call_id = bob.locator("#incoming-call").get_attribute("data-call-id")
    shots.take(alice, "alice-calling")
    shots.take(bob, "bob-ringing")

    # Without an answer about the conversation the laptop rings after ~1 s with a generic label,
    # and names Alice once the answer comes.
    expect(bob_laptop.locator("#incoming-title")).to_have_text("Someone is calling", timeout=5_000)
    shots.take(bob_laptop, "bob-laptop-ringing-before-names")
    assert len(held) == 1
    held[0].continue_()
    expect(bob_laptop.locator("#incoming-title")).to_have_text("Alice is calling")

    bob.locator("#accept-call").click()
    expect(bob.locator("#incoming-call")).to_be_hidden()
    call_state(bob).to_have_attribute("data-ringing", "false")
    expect(bob_laptop.locator("#incoming-call")).to_be_hidden()
    call_state(bob_laptop).to_have_attribute("data-ringing", "false")
    expect(bob_laptop.locator(".toast").filter(has_text="Answered on another device")).to_have_count(1)
    shots.take(bob_laptop, "bob-laptop-answered-elsewhere")
    call_state(alice).to_have_attribute("data-call-state", "connected")
    call_state(bob).to_have_attribute("data-call-state", "connected")
    bob_stats = media_flowing(bob, video=True)
    alice_stats = media_flowing(alice, video=True)
    assert [s["userId"] for s in bob_stats] == [cast.alice.user_id]
    assert [s["userId"] for s in alice_stats] == [cast.bob.user_id]
    assert bob_stats[0]["framesDecoded"] > 0
    expect(alice.locator("#call-peer")).to_have_text("Bob")
    expect(bob.locator("#call-peer")).to_have_text("Alice")
    expect(alice.locator(f'.remote-tile[data-user-id="{cast.bob.user_id}"] .tile-label')).to_have_text("Bob")
    shots.take(alice, "alice-in-call")
    shots.take(bob, "bob-in-call")

    alice.locator("#toggle-audio").click()
    expect(alice.locator("#toggle-audio")).to_have_attribute("aria-pressed", "true")
    alice_tile = bob.locator(f'.remote-tile[data-user-id="{cast.alice.user_id}"]')
    expect(alice_tile).to_have_attribute("data-audio-muted", "true")
    expect(alice_tile.locator(".mic-badge")).to_be_visible()
    shots.take(bob, "bob-sees-alice-muted")
    # the server recorded it on the call too
    wait_until(
        lambda: any(
            p["user_id"] == cast.alice.user_id and p["is_muted"]
            for p in api(cast.bob).get(f"/v1/calls/{call_id}").json()["data"]["participants"]
        ),
        timeout=10,
        message="Alice's mute recorded on the call",
    )

    bob.wait_for_timeout(1200)  # at least a second of talk, so the duration is not zero
    bob.locator("#hangup").click()
    for page in (alice, bob):
        expect(page.locator("#call-status")).to_contain_text("Call ended")
    shots.take(alice, "alice-call-ended")
    for page in (alice, bob):
        call_state(page).to_have_attribute("data-call-state", "idle", timeout=10_000)
        expect(page.locator("#call-view")).to_be_hidden()
    shots.take(bob, "bob-idle-again")

    for account in (cast.alice, cast.bob):
        call = wait_until(
            lambda account=account: (c := the_call(api(account), call_id))["status"] == "ended" and c,
            timeout=10,
            message="the call ended in history",
        )
        assert call["duration_seconds"] >= 1 and call["end_reason"] == "hangup"

    bob.locator("#tab-history").click()
    row = bob.locator(f'.call-row[data-call-id="{call_id}"]')
    expect(row).to_have_attribute("data-status", "ended")
    expect(row).to_have_attribute("data-direction", "incoming")
    expect(row.locator(".status")).to_have_text("Answered")
    expect(row.locator(".row-title")).to_have_text("Alice")
    expect(bob.locator('#analytics [data-stat="answered"] .stat-value')).to_have_text("1")
    shots.take(bob, "bob-history")

    admin = browser.person()
    admin.goto("/admin/login/?next=/admin/calls/call/")
    admin.locator("#id_username").fill(cast.staff.email)
    admin.locator("#id_password").fill(cast.staff.password)
    admin.locator("input[type=submit]").click()
    admin.goto(f"/admin/calls/call/?q={call_id}")
    result = admin.locator("#result_list tbody tr")
    expect(result).to_have_count(1)
    expect(result).to_contain_text(call_id[:8])
    expect(result).to_contain_text("Ended")
    expect(result).to_contain_text("Hang-up")
    shots.take(admin, "admin-changelist")


def test_declined_call_says_declined_to_the_caller_and_in_history(browser, cast, api, shots):
    alice = browser.person()
    bob = browser.person()
    log_in(alice, cast.alice)
    log_in(bob, cast.bob)

    call_button(alice, cast.conversation_id, "audio").click()
    expect(bob.locator("#incoming-kind")).to_have_text("Incoming audio call")
    call_id = bob.locator("#incoming-call").get_attribute("data-call-id")
    expect(bob.locator("#incoming-title")).to_have_text("Alice is calling")
    shots.take(bob, "bob-ringing-audio")
    bob.locator("#decline-call").click()

    expect(alice.locator("#call-status")).to_have_text("Bob declined the call")
    call_state(alice).to_have_attribute("data-call-state", "ended")
    shots.take(alice, "alice-sees-declined")
    expect(bob.locator("#incoming-call")).to_be_hidden()
    call_state(bob).to_have_attribute("data-ringing", "false")
    call_state(alice).to_have_attribute("data-call-state", "idle", timeout=10_000)

    for account in (cast.alice, cast.bob):
        call = the_call(api(account), call_id)
        assert call["status"] == "declined" and call["duration_seconds"] == 0
    alice.locator("#tab-history").click()
    row = alice.locator(f'.call-row[data-call-id="{call_id}"]')
    expect(row).to_have_attribute("data-status", "declined")
    expect(row.locator(".status")).to_have_text("Declined")
    shots.take(alice, "alice-history-declined")


@pytest.mark.service_env(CALL_RING_TIMEOUT="4")
def test_unanswered_call_says_no_answer_stops_ringing_and_is_missed(browser, cast, api, shots):
    alice = browser.person()
    bob = browser.person(viewport=PHONE)
    log_in(alice, cast.alice)
    log_in(bob, cast.bob)

    call_button(alice, cast.conversation_id, "video").click()
    expect(bob.locator("#incoming-call")).to_be_visible()
    call_id = bob.locator("#incoming-call").get_attribute("data-call-id")
    shots.take(bob, "bob-ringing")

    # Nobody answers: after the 4 s ring timeout the server's sweep marks the call missed.
    expect(alice.locator("#call-status")).to_have_text("No answer", timeout=20_000)
    shots.take(alice, "alice-no-answer")
    expect(bob.locator("#incoming-call")).to_be_hidden()
    call_state(bob).to_have_attribute("data-ringing", "false")
    expect(bob.locator(".toast").filter(has_text="Missed call from Alice")).to_have_count(1)
    shots.take(bob, "bob-missed")
    call_state(alice).to_have_attribute("data-call-state", "idle", timeout=10_000)

    for account in (cast.alice, cast.bob):
        call = the_call(api(account), call_id)
        assert call["status"] == "missed" and call["end_reason"] == "no_answer"
    bob.locator("#tab-history").click()
    row = bob.locator(f'.call-row[data-call-id="{call_id}"]')
    expect(row).to_have_attribute("data-status", "missed")
    expect(row.locator(".status")).to_have_text("Missed")
    shots.take(bob, "bob-history-missed")


def test_events_socket_reconnects_after_the_service_restarts_and_rings_again(browser, cast, service, shots):
    """While the service is down: the list that failed to load says so, pressing Video says once
    that the service cannot be reached; when it is back the list reloads by itself (no Retry)."""
    alice = browser.person()
    bob = browser.person()
    log_in(alice, cast.alice)
    log_in(bob, cast.bob)
    expect(call_button(bob, cast.conversation_id, "audio")).to_be_enabled()

    service.stop()
    expect(alice.locator("#connection")).to_have_attribute("data-state", "retrying")
    expect(alice.locator("#banner")).to_contain_text("Retrying")
    alice.locator("#tab-conversations").click()  # reads the list again: it cannot
    expect(alice.locator("#conversation-list .error-row")).to_contain_text("Could not load conversations")
    shots.take(alice, "alice-connection-lost")

    call_button(bob, cast.conversation_id, "video").click()
    toasts = bob.locator(".toast")
    expect(toasts).to_have_count(1)
    expect(toasts).to_contain_text("Cannot reach the service, so the call did not start.")
    expect(bob.locator("#banner")).to_contain_text("Cannot reach the service. Retrying")
    call_state(bob).to_have_attribute("data-call-state", "idle")
    expect(bob.locator("#call-view")).to_be_hidden()
    bob.wait_for_timeout(1000)  # nothing else follows (no second, contradictory message)
    expect(toasts).to_have_count(1)
    shots.take(bob, "bob-video-while-service-down")

    service.start()  # the same port: the pages reconnect by themselves, with backoff
    for page in (alice, bob):
        expect(page.locator("#connection")).to_have_attribute("data-state", "online", timeout=40_000)
    expect(alice.locator("#banner")).to_be_hidden()
    # the list read again on reconnecting, Retry never pressed
    expect(alice.locator("#conversation-list .error-row")).to_have_count(0)
    expect(alice.locator(f'[data-conversation-id="{cast.conversation_id}"] .row-title')).to_have_text("Bob")
    shots.take(alice, "alice-reconnected")

    call_button(bob, cast.conversation_id, "audio").click()
    expect(alice.locator("#incoming-call")).to_be_visible()
    shots.take(alice, "alice-rings-after-reconnect")
    bob.locator("#hangup").click()  # the caller gives up: Alice stops ringing
    expect(alice.locator("#incoming-call")).to_be_hidden()
    expect(alice.locator(".toast").filter(has_text="Bob cancelled the call")).to_have_count(1)


@pytest.mark.service_env(THROTTLE_USER_LOOKUP="2/min")
def test_a_new_user_registers_and_finds_people_by_email_and_by_user_id(browser, cast, shots):
    carol = browser.person(viewport=PHONE)
    carol.goto("/app/")
    carol.locator("#tab-register").click()
    form = carol.locator("#register-form")
    form.locator("input[name=email]").fill("carol@example.test")
    form.locator("input[name=username]").fill("carol")
    form.locator("input[name=display_name]").fill("Carol")
    form.locator("input[name=password]").fill("short")
    form.locator("button[type=submit]").click()
    # The service's message in plain words, beside the password field (no "password:" key)
    password = form.locator("input[name=password]")
    note = form.locator("#register-form-password-error")
    expect(note).to_contain_text("This password is too short")
    expect(password).to_have_attribute("aria-invalid", "true")
    expect(password).to_have_attribute("aria-describedby", "register-form-password-error")
    assert not note.inner_text().lower().startswith("password")
    expect(form.locator(".form-error")).to_be_hidden()
    box, field = note.bounding_box(), password.bounding_box()
    assert 0 <= box["y"] - (field["y"] + field["height"]) < 40  # right under the field
    shots.take(carol, "carol-register-refused")
    form.locator("input[name=password]").fill("a-long-passphrase-carol")
    form.locator("button[type=submit]").click()
    expect(carol.locator("#me-name")).to_have_text("Carol")
    expect(carol.locator("#conversation-list .empty")).to_be_visible()

    error = carol.locator("#conversation-form .form-error")
    start_conversation(carol, "alice@nowhere.test")  # look-up 1 of 2 this minute
    expect(error).to_have_text('Nobody has the email address or username "alice@nowhere.test".')
    shots.take(carol, "carol-nobody-found")
    start_conversation(carol, "CAROL")  # herself, recognised without asking the service
    expect(error).to_have_text("That is you; name someone else.")
    expect(carol.locator("#my-username")).to_have_text("carol")

    start_conversation(carol, cast.alice.email)  # look-up 2 of 2
    cards = carol.locator("#conversation-list .conversation")
    expect(cards).to_have_count(1)
    expect(cards.locator(".row-title")).to_have_text("Alice")
    expect(cards.locator("button[data-call-type=video]")).to_be_enabled()

    start_conversation(carol, cast.bob.username)  # one look-up too many
    expect(error).to_contain_text("Too many look-ups in a short time; try again in")
    shots.take(carol, "carol-rate-limited")
    start_conversation(carol, cast.bob.user_id)  # a user id needs no look-up
    expect(cards).to_have_count(2)
    expect(cards.first.locator(".row-title")).to_have_text("Bob")
    expect(error).to_be_hidden()
    shots.take(carol, "carol-conversations")
