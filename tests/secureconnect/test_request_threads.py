"""HTTP requests' sync code on reused threads (secureconnect/request_threads.py): one thread
serves request after request, requests at once still run at once on threads of their own,
and the service's own ASGI application is wrapped; a request's middleware and view run in one
call on that thread (OneCallASGIHandler)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from asgiref import sync as asgiref_sync
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_finished, request_started
from django.http import JsonResponse
from django.test import override_settings
from django.urls import path
from django.utils.deprecation import MiddlewareMixin

from secureconnect.request_threads import OneCallASGIHandler, ReusedRequestThreads

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

    wrapped = ReusedRequestThreads(app, max_running=8)

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

    wrapped = ReusedRequestThreads(app, max_running=8, keep_idle=1)

    async def three_at_once():
        return await asyncio.gather(*(get(wrapped) for _ in range(3)))

    assert [status for status, _ in asyncio.run(three_at_once())] == [204] * 3
    assert len(wrapped._idle) == 1


def test_past_max_running_requests_wait_their_turn_and_all_are_answered():
    running, most, lock = [0], [0], threading.Lock()

    def view():
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1

    async def app(scope, receive, send):
        await sync_to_async(view)()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    wrapped = ReusedRequestThreads(app, max_running=2)

    async def six_at_once():
        return await asyncio.gather(*(get(wrapped, "/v1/calls") for _ in range(6)))

    assert [status for status, _ in asyncio.run(six_at_once())] == [204] * 6
    assert most[0] == 2  # two at a time, never more (and the turns were used)
    assert len(wrapped._idle) == 2  # two threads served all six


def test_probes_and_metrics_never_wait_for_a_turn():
    release = threading.Event()

    def view(path):
        if path.startswith("/v1/"):
            release.wait(timeout=10)  # as a request waiting for a database that went away

    async def app(scope, receive, send):
        await sync_to_async(view)(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    wrapped = ReusedRequestThreads(app, max_running=1)

    async def probes_while_the_turn_is_held():
        held = asyncio.ensure_future(get(wrapped, "/v1/calls"))
        queued = asyncio.ensure_future(get(wrapped, "/v1/calls"))
        await asyncio.sleep(0.1)
        probes = await asyncio.wait_for(
            asyncio.gather(get(wrapped, "/health/ready"), get(wrapped, "/metrics")), timeout=5
        )
        waiting = not queued.done()
        release.set()
        return probes, waiting, await asyncio.gather(held, queued)

    probes, waiting, api = asyncio.run(probes_while_the_turn_is_held())
    assert [body for _, body in probes] == [b"/health/ready", b"/metrics"]
    assert waiting  # the second API request was still waiting for the turn
    assert [status for status, _ in api] == [200, 200]


def test_websockets_pass_through_untouched():
    scopes = []

    async def app(scope, receive, send):
        scopes.append(scope["type"])

    asyncio.run(ReusedRequestThreads(app, max_running=8)({"type": "websocket"}, None, None))
    asyncio.run(ReusedRequestThreads(app, max_running=8)({"type": "lifespan"}, None, None))
    assert scopes == ["websocket", "lifespan"]


# --- one call per request ------------------------------------------------------------------------

seen_on: dict[str, int] = {}  # which thread ran each step of the request


def recording_view(request):
    seen_on["view"] = threading.get_ident()
    return JsonResponse({"ok": True})


def urlpatterns_with_the_recording_view():
    from secureconnect.urls import urlpatterns as service_urlpatterns

    return [path("recorded", recording_view), *service_urlpatterns]


urlpatterns = urlpatterns_with_the_recording_view()


class RecordingMiddleware(MiddlewareMixin):
    """A Django-style middleware (both hooks), as most of the service's MIDDLEWARE are."""

    def process_request(self, request):
        seen_on["process_request"] = threading.get_ident()

    def process_response(self, request, response):
        seen_on["process_response"] = threading.get_ident()
        return response


def recording_finished(**kwargs):
    seen_on["request_finished"] = threading.get_ident()  # where the database connection goes back


def hand_overs_of_one_request(handler_class, path_="/recorded") -> tuple[int, int]:
    """(status, what the request's code ran on a thread, in the order it crossed from the loop)."""
    crossings = []
    original = asgiref_sync.SyncToAsync.__call__

    async def counting(self, *args, **kwargs):
        crossings.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await original(self, *args, **kwargs)

    with override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=[*settings.MIDDLEWARE, f"{__name__}.RecordingMiddleware"]):
        app = ReusedRequestThreads(handler_class(), max_running=8)
        asgiref_sync.SyncToAsync.__call__ = counting
        try:
            status, _ = asyncio.run(get(app, path_))
        finally:
            asgiref_sync.SyncToAsync.__call__ = original
    return status, crossings


@pytest.mark.django_db(transaction=True)
def test_a_requests_middleware_view_and_finish_run_on_one_thread_in_one_call():
    seen_on.clear()
    request_finished.connect(recording_finished)
    try:
        status, crossings = hand_overs_of_one_request(OneCallASGIHandler)
    finally:
        request_finished.disconnect(recording_finished)
    assert status == 200
    assert set(seen_on) == {"process_request", "view", "process_response", "request_finished"}
    assert len(set(seen_on.values())) == 1  # one thread for all of it
    assert threading.get_ident() not in seen_on.values()  # and not the loop's
    # request_started's receivers, then the chain (every middleware and the view) in one
    # crossing, then the response's close (request_finished).
    assert len(crossings) == 3, crossings
    assert crossings[1] == "convert_exception_to_response.<locals>.inner"
    # Django's own handler crosses for each Mixin hook and each sync-only middleware as well.
    assert len(hand_overs_of_one_request(ASGIHandler)[1]) >= 8


def test_the_services_http_application_is_the_one_call_handler():
    from secureconnect.asgi import application

    assert isinstance(application.application_mapping["http"].app, OneCallASGIHandler)


@pytest.mark.django_db(transaction=True)
def test_errors_raised_in_a_view_still_become_the_envelope_under_the_one_call_handler():
    from secureconnect.asgi import application

    async def requests():
        return await get(application, "/v1/calls/not-a-uuid"), await get(application, "/v1/no-such-path")

    (unauthenticated, body), (missing, missing_body) = asyncio.run(requests())
    assert unauthenticated == 401 and b'"success":false' in body
    assert missing == 404 and b'"NOT_FOUND"' in missing_body
