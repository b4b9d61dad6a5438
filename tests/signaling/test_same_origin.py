"""The service's own web client (/app/) opens its sockets in production with no
CORS_ALLOWED_ORIGINS: an Origin whose host and port are the request's Host (one of ALLOWED_HOSTS)
and whose scheme matches (https for wss, http for ws, wss as a trusted proxy reports it) is
always allowed. Real daphne processes with ENV=production; everything else is still refused."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from accounts.tokens import issue_access_token
from bench.processes import ServiceProcess
from signaling.authentication import origin_check
from signaling.protocol import Refused
from tests.signaling.conftest import EVENTS_PATH
from tests.support import production

pytestmark = pytest.mark.portable

WAIT = 10
PROXIED_HOST = "video.test"  # what a browser behind the proxy has in its address bar


@pytest.fixture(scope="module")
def direct(tmp_path_factory):
    """No proxy: the browser talks to daphne itself, over plain ws."""
    tmp = tmp_path_factory.mktemp("direct")
    env = production.production_environment(tmp, ALLOWED_HOSTS=f"127.0.0.1,{PROXIED_HOST}", NUM_PROXIES="0")
    service = ServiceProcess(env=env, log_path=tmp / "daphne.log").start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    """Behind one TLS-terminating proxy that reports X-Forwarded-Proto."""
    tmp = tmp_path_factory.mktemp("proxied")
    env = production.production_environment(tmp, ALLOWED_HOSTS=f"127.0.0.1,{PROXIED_HOST}", NUM_PROXIES="1")
    service = ServiceProcess(env=env, log_path=tmp / "daphne.log").start()
    yield service
    service.stop()


@pytest.fixture
def token(settings):
    settings.JWT_SECRET = production.JWT_SECRET  # the production processes' secret
    return issue_access_token(user_id=uuid.uuid4(), email="web@example.com", username="web", role="user")


async def open_events(service, token, *, origin, host=None, headers=None):
    """The events socket as a browser opens it (token as the bearer subprotocol); ``host`` is the
    Host header (the TCP connection always goes to the process on loopback). Returns the first
    answer to a ping: ``pong`` when the socket was accepted, the error when it was refused."""
    uri = f"ws://{host or f'127.0.0.1:{service.port}'}{EVENTS_PATH}"
    async with connect(
        uri,
        host="127.0.0.1",
        port=service.port,
        origin=origin,
        subprotocols=["bearer", token],
        additional_headers=headers or {},
        proxy=None,
        open_timeout=WAIT,
    ) as socket:
        with contextlib.suppress(ConnectionClosed):  # refused: the error frame is already queued
            await socket.send(json.dumps({"type": "ping"}))
        try:
            return json.loads(await asyncio.wait_for(socket.recv(), WAIT))
        except ConnectionClosed as closed:
            return {"type": "closed", "code": closed.rcvd.code if closed.rcvd else None}


def assert_refused_as_foreign(answer):
    assert answer["type"] == "error" and answer["close_code"] == 4403, answer
    assert "Origin is not allowed" in answer["message"]


@pytest.mark.asyncio
async def test_the_web_clients_own_origin_opens_its_socket_without_cors_settings(direct, token):
    answer = await open_events(direct, token, origin=f"http://127.0.0.1:{direct.port}")
    assert answer["type"] == "pong", answer


@pytest.mark.asyncio
async def test_a_foreign_origin_is_still_refused_in_production(direct, token):
    assert_refused_as_foreign(await open_events(direct, token, origin="https://evil.example"))


@pytest.mark.asyncio
async def test_an_origin_on_another_port_of_the_same_host_is_refused(direct, token):
    assert_refused_as_foreign(await open_events(direct, token, origin="http://127.0.0.1:1"))


@pytest.mark.asyncio
async def test_an_https_origin_on_a_plain_ws_socket_is_refused(direct, token):
    assert_refused_as_foreign(await open_events(direct, token, origin=f"https://127.0.0.1:{direct.port}"))


@pytest.mark.asyncio
async def test_a_host_outside_allowed_hosts_cannot_vouch_for_its_own_origin(direct, token):
    """DNS rebinding: the attacker's name points at the service, Origin and Host agree, but the
    name is not one the service answers to."""
    answer = await open_events(direct, token, origin="http://evil.example", host="evil.example")
    assert_refused_as_foreign(answer)


@pytest.mark.asyncio
async def test_a_client_cannot_claim_wss_when_no_proxy_is_trusted(direct, token):
    answer = await open_events(
        direct, token, origin=f"https://{PROXIED_HOST}", host=PROXIED_HOST, headers={"X-Forwarded-Proto": "https"}
    )
    assert_refused_as_foreign(answer)


@pytest.mark.asyncio
async def test_behind_a_trusted_proxy_the_https_page_opens_its_wss_socket(proxied, token):
    answer = await open_events(
        proxied, token, origin=f"https://{PROXIED_HOST}", host=PROXIED_HOST, headers={"X-Forwarded-Proto": "https"}
    )
    assert answer["type"] == "pong", answer


@pytest.mark.asyncio
async def test_behind_a_trusted_proxy_an_http_page_cannot_open_the_wss_socket(proxied, token):
    answer = await open_events(
        proxied, token, origin=f"http://{PROXIED_HOST}", host=PROXIED_HOST, headers={"X-Forwarded-Proto": "https"}
    )
    assert_refused_as_foreign(answer)


MALFORMED = [
    ("http://[::1", "127.0.0.1:8083"),
    ("http://127.0.0.1:99999", "127.0.0.1:8083"),
    ("http://127.0.0.1:port", "127.0.0.1:8083"),
    ("http://ops@127.0.0.1:8083", "127.0.0.1:8083"),
    ("http://127.0.0.1:8083?x=1", "127.0.0.1:8083"),
    ("null", "127.0.0.1:8083"),
    ("http://127.0.0.1:8083", "127.0.0.1:99999"),
    ("http://127.0.0.1:8083", "["),
    ("http://127.0.0.1:8083", ""),
]


def handshake(origin: str, host: str) -> dict:
    return {"type": "websocket", "headers": [(b"origin", origin.encode()), (b"host", host.encode())]}


@pytest.mark.parametrize(("origin", "host"), MALFORMED)
def test_malformed_origin_or_host_headers_are_refused_in_production(origin, host, settings):
    """In-process: whatever the two headers hold, production answers a 4403 refusal."""
    settings.IS_PRODUCTION, settings.ALLOWED_HOSTS, settings.CORS_ALLOWED_ORIGINS = True, ["127.0.0.1"], []
    with pytest.raises(Refused) as refused:
        origin_check(handshake(origin, host))
    assert refused.value.close.code == 4403


@pytest.mark.parametrize(("origin", "host"), MALFORMED)
def test_malformed_origin_or_host_headers_never_crash_the_development_check(origin, host, settings):
    """Development also allows loopback origins on any port; a malformed one is refused, not a crash."""
    settings.IS_PRODUCTION, settings.ALLOWED_HOSTS, settings.CORS_ALLOWED_ORIGINS = False, ["127.0.0.1"], []
    with contextlib.suppress(Refused):
        origin_check(handshake(origin, host))
