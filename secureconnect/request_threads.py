"""HTTP requests' sync code: on threads that are reused, in one call per request.

Django's ASGI handler runs each request's sync code (middleware, views) on a thread of its own,
and asgiref starts that thread for the request and a second one to join it afterwards: under
50 clients half of the server loop's samples were in ``Thread.start`` (docs/benchmarks.md,
"Issue 17: the lean write path"; asgiref's open PR #306 is about the same). asgiref 3.13's
``ThreadSensitiveContext(executor=...)`` lets the caller own that executor, so each request
here takes a one-thread executor from a free list and gives it back when it is answered.

At most ``SERVER_THREADS`` requests run their sync code at once; the others wait on the loop for
a turn, in arrival order. With the GIL, threads past a few add no throughput, only hand-overs: at 50
clients on two workers an unbounded count (25 threads a worker) served the lifecycle at 141 req/s
with p99 0.83 s, six at a time at 170 req/s with p99 0.58 s (docs/benchmarks.md, "Issue 17:
workers that share the load"). ``/health`` and ``/metrics`` never wait: a probe must answer while
every turn is held by requests that wait for a database that went away.

One request at a time per thread, as before: thread-local state (Django's database connection,
handed back to the pool by ``request_finished``) still belongs to one request at a time. A
request whose client left while its view still runs holds its thread until the view returns
(a cancelled task cannot stop a thread); the next request given that executor waits for it.

``OneCallASGIHandler`` is Django's ASGI handler with its middleware chain built for sync code and
called once per request on that thread. Django's own builds the chain for async code: then every
``MiddlewareMixin`` hook (``process_request``, ``process_view``, ``process_response``) and every
sync-only middleware is one more hand-over between the loop and the thread: eight crossings from
the loop per request with this service's middleware and one back, each a future, a lock and two
GIL hand-overs, against three here (``request_started``, the chain, the close; docs/benchmarks.md,
"Issue 17: one call per request"). Run as one call, a request's middleware and view cost what
they cost under WSGI, and the loop, which the sockets share, only parses and sends.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler

# Idle executors kept for the next requests; past it a returned one is let go (its thread exits
# once idle). More requests at once than this still each get a thread.
KEEP_IDLE = 64
# Paths served without waiting for a turn (the probes and the metrics scrape).
UNQUEUED_PATHS = ("/health", "/metrics")


class ReusedRequestThreads:
    """ASGI middleware for the ``http`` scope; every other scope passes through."""

    def __init__(self, app, *, max_running: int, keep_idle: int = KEEP_IDLE):
        self.app = app
        self.max_running = max_running
        self.keep_idle = keep_idle
        self._idle: list[ThreadPoolExecutor] = []  # touched only by the loop's thread
        self._turns: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def _turns_here(self) -> asyncio.Semaphore:
        """The turns of the running loop (a semaphore belongs to one loop; tests start several)."""
        loop = asyncio.get_running_loop()
        if self._turns is None or self._turns[0] is not loop:
            self._turns = (loop, asyncio.Semaphore(self.max_running))
        return self._turns[1]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"].startswith(UNQUEUED_PATHS):
            return await self._run(scope, receive, send)
        async with self._turns_here():
            return await self._run(scope, receive, send)

    async def _run(self, scope, receive, send):
        executor = self._idle.pop() if self._idle else ThreadPoolExecutor(1, thread_name_prefix="request")
        try:
            async with ThreadSensitiveContext(executor=executor):
                return await self.app(scope, receive, send)
        finally:
            if len(self._idle) < self.keep_idle:
                self._idle.append(executor)
            else:
                executor.shutdown(wait=False)  # never block the loop on a join


class OneCallASGIHandler(ASGIHandler):
    """Django's ASGI handler whose middleware chain and view run as one sync call per request.

    The chain is Django's, built as the WSGI handler builds it (``load_middleware(is_async=False)``),
    then wrapped once in ``sync_to_async``: thread-sensitive, so it runs on the request's thread
    (``ReusedRequestThreads``), where Django also runs ``request_finished`` and so hands the
    database connection back. An async view, should one be added, runs through ``async_to_sync``
    on the loop, as under WSGI."""

    def load_middleware(self, is_async=False):
        super().load_middleware(is_async=False)
        self._middleware_chain = sync_to_async(self._middleware_chain, thread_sensitive=True)
