"""HTTP requests' sync code on reused threads (secureconnect/request_threads.py): one thread
serves request after request, requests at once still run at once on threads of their own,
and the service's own ASGI application is wrapped."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from django.core.signals import request_started

from secureconnect.request_threads import ReusedRequestThreads

pytestmark = pytest.mark.portable


async def get(app, path="/health"):
    """One GET through an ASGI application; (status, body)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    sent, request_read = [], asyncio.Event()

    async def receive():
        if not request_read.is_set():
            request_read.set()
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected

    async def send(message):
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_the_services_http_application_reuses_request_threads():
    from secureconnect.asgi import application

    assert isinstance(application.application_mapping["http"], ReusedRequestThreads)


@pytest.mark.django_db(transaction=True)
def test_request_after_request_runs_on_one_thread():
    from secureconnect.asgi import application

    threads = []

    def started(**kwargs):
        threads.append(threading.get_ident())

    request_started.connect(started)
    try:

        async def requests():
            return [await get(application) for _ in range(10)]

        answers = asyncio.run(requests())
    finally:
        request_started.disconnect(started)
    assert [status for status, _ in answers] == [200] * 10
    assert len(threads) == 10 and len(set(threads)) == 1  # asgiref alone: 10 threads (and 10 more to join them)
    assert threading.get_ident() not in threads


def test_requests_at_once_run_at_once_each_on_its_own_thread():
    both_inside = threading.Barrier(2)
    seen = []

    def view():
        seen.append(threading.get_ident())
        both_inside.wait(timeout=5)  # only passes if the other request runs at the same time

    async def app(scope, receive, send):
        await sync_to_async(view)()  # thread-sensitive, as Django runs a sync view
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    wrapped = ReusedRequestThreads(app)

    async def two_at_once():
        return await asyncio.gather(get(wrapped), get(wrapped))

    assert [status for status, _ in asyncio.run(two_at_once())] == [204, 204]
    assert len(set(seen)) == 2
    assert len(wrapped._idle) == 2  # both kept for the next requests


def test_past_the_idle_bound_executors_are_let_go():
    inside = threading.Barrier(3)

    async def app(scope, receive, send):
        await sync_to_async(lambda: inside.wait(timeout=5))()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    wrapped = ReusedRequestThreads(app, keep_idle=1)

    async def three_at_once():
        return await asyncio.gather(*(get(wrapped) for _ in range(3)))

    assert [status for status, _ in asyncio.run(three_at_once())] == [204] * 3
    assert len(wrapped._idle) == 1


def test_websockets_pass_through_untouched():
    scopes = []

    async def app(scope, receive, send):
        scopes.append(scope["type"])

    asyncio.run(ReusedRequestThreads(app)({"type": "websocket"}, None, None))
    asyncio.run(ReusedRequestThreads(app)({"type": "lifespan"}, None, None))
    assert scopes == ["websocket", "lifespan"]
