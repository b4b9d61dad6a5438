"""Browser end-to-end fixtures: the service as a real daphne process (PostgreSQL test database,
Redis channel layer), and headless Chromium from the distribution driven by Playwright.

Playwright's sync API runs its own event loop: these tests use no asyncio fixtures, and every
database row they need is created before the browser starts (the ORM refuses to run while
that loop is marked running). During a test, state is read through the REST API.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from accounts.tokens import issue_access_token
from bench.processes import ServiceProcess
from tests.factories import DEFAULT_PASSWORD, make_conversation, make_user
from tests.support.servers import service_env

CHROMIUM = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
REDIS_TEST_DB = 13
_service_numbers = itertools.count()
# Fake camera and microphone, no permission prompt, loopback ICE candidates (no mDNS names),
# and nothing that would reach for the network this machine does not have.
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 15_000  # every Playwright wait is bounded by this unless a step says otherwise
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
ARTIFACTS = Path(settings.TEST_ARTIFACTS_DIR) / "e2e"
_reported_folders: list[Path] = []


def pytest_terminal_summary(terminalreporter):
    if _reported_folders:
        terminalreporter.write_sep("-", "browser screenshots")
        for folder in _reported_folders:
            terminalreporter.write_line(str(folder))


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"needs Chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)")
    return CHROMIUM


@dataclass
class Account:
    user_id: str
    email: str
    username: str
    display_name: str
    password: str = DEFAULT_PASSWORD
    role: str = "user"

    @property
    def token(self) -> str:
        return issue_access_token(user_id=self.user_id, email=self.email, username=self.username, role=self.role)


@dataclass
class Cast:
    """Everyone a scenario needs, created before the browser starts."""

    alice: Account
    bob: Account
    staff: Account
    conversation_id: str | None  # Alice and Bob's direct conversation; None when a test makes it in the UI


def _account(user, **extra) -> Account:
    # The suite hashes with MD5 for speed; the service process knows only the real hashers.
    user.password = PBKDF2PasswordHasher().encode(DEFAULT_PASSWORD, PBKDF2PasswordHasher().salt(), iterations=1000)
    user.save(update_fields=["password"])
    return Account(str(user.id), user.email, user.username, user.display_name, **extra)


@pytest.fixture
def cast(transactional_db, request) -> Cast:
    """Alice, Bob (each with a display name unlike their username), staff, and a direct conversation
    of Alice and Bob, unless the test asks for none:
    ``@pytest.mark.parametrize("cast", [{"conversation": False}], indirect=True)``."""
    options = getattr(request, "param", {})
    alice = make_user(username=f"alice{os.getpid()}", display_name="Alice")
    bob = make_user(username=f"bob{os.getpid()}", display_name="Bob")
    staff = make_user(username=f"support{os.getpid()}", display_name="Support", is_staff=True, is_superuser=True)
    conversation = make_conversation(members=[alice, bob]) if options.get("conversation", True) else None
    return Cast(
        _account(alice), _account(bob), _account(staff, role="admin"), str(conversation.id) if conversation else None
    )


@pytest.fixture
def service(cast, request, tmp_path):
    """daphne on a free loopback port, on this test's database; ``@pytest.mark.service_env(...)``
    adds variables (a short ring timeout, say).

    Redis is shared with any other run of these tests on this machine, so nothing flushes it: each
    service gets a channel-layer prefix of its own, and the cache keys it writes name users, calls
    or conversations made for this test; only registration is limited per address, so its limit
    is raised."""
    env = service_env(
        prefix=f"e2e-{os.getpid()}-{next(_service_numbers)}",
        spool_path=tmp_path / "spool.sqlite3",
        redis_url=f"redis://127.0.0.1:6379/{REDIS_TEST_DB}",
        DB_STARTUP_MODE="blocking",
        CALL_EXPIRY_INTERVAL="0.5",
        THROTTLE_CALL_INITIATE="1000/min",
        THROTTLE_REGISTER="1000/min",
        LOG_LEVEL="INFO",
    )
    marker = request.node.get_closest_marker("service_env")
    if marker:
        env.update(marker.kwargs)
    process = ServiceProcess(env=env, log_path=tmp_path / "service.log")
    try:
        process.start()
        yield process
    finally:
        process.stop()
        if getattr(request.node, "e2e_failed", False):
            print(f"--- service log (last 20000 characters of {process.log_path}) ---")
            print(process.log_text()[-20_000:])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed:
        item.e2e_failed = True
    return report


class Shots:
    """Numbered screenshots of what each person saw, in test-artifacts/e2e/<test>/."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.count = 0

    def take(self, page, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path))
        return path


@pytest.fixture
def shots(request) -> Shots:
    folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    _reported_folders.append(folder)
    return Shots(folder)


@dataclass
class Browser:
    """One Chromium; each person gets a context of their own (separate storage, like two devices)."""

    browser: object
    base_url: str
    pages: list = field(default_factory=list)
    page_errors: list = field(default_factory=list)  # uncaught exceptions in the client: a test fails on any

    def person(self, *, viewport=DESKTOP, base_url: str | None = None, permissions=(), init_script: str | None = None):
        """A browser context of its own; ``base_url`` reaches the service another way (a proxy),
        ``permissions`` are granted to it (``["notifications"]``), ``init_script`` runs in every
        page before the client's own scripts."""
        context = self.browser.new_context(
            base_url=base_url or self.base_url, viewport=viewport, permissions=list(permissions)
        )
        context.set_default_timeout(WAIT_MS)
        if init_script:
            context.add_init_script(init_script)
        page = context.new_page()
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("console", lambda msg: msg.type in ("error", "warning") and print(f"[console {msg.type}] {msg.text}"))
        self.pages.append(page)
        return page


@pytest.fixture
def browser(service, chromium_path):
    """Playwright started after the database rows exist and stopped before they are flushed."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, timeout=60_000)
        session = Browser(chromium, service.url)
        try:
            yield session
        finally:
            chromium.close()
        assert not session.page_errors, f"uncaught errors in the client: {session.page_errors}"


@pytest.fixture
def api(service):
    """REST as a given account: ``api(cast.alice).get("/v1/calls")``."""
    clients = []

    def client_for(account: Account) -> httpx.Client:
        client = service.client(account.token)
        clients.append(client)
        return client

    yield client_for
    for client in clients:
        client.close()
