"""SERVER_IMPLEMENTATION=uvicorn (the default): uvicorn on uvloop, HTTP parsed by httptools and
WebSockets by websockets' sans-I/O protocol, with the production limits.

uvicorn's own settings give the frame cap (``ws_max_size``: websockets refuses a frame whose
header announces more, before reading its payload, with close code 1009) and the pings
(``ws_ping_interval`` / ``ws_ping_timeout``). The two protocol classes below, passed as
``http=`` and ``ws=`` to ``uvicorn.Config``, add what uvicorn does not have: the header deadline,
the body cap, and the disconnect codes the application is told (4408 for an unanswered ping,
1006 for a lost TCP connection). They build on uvicorn 0.54's ``HttpToolsProtocol`` and
``WebSocketsSansIOProtocol``; check them again when uvicorn is upgraded.
"""

from __future__ import annotations

import asyncio
import signal
import socket

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from core.api.request_id import request_id_from_header
from secureconnect.server import PING_TIMEOUT_DISCONNECT_CODE
from secureconnect.server.responses import ABORT_AFTER, REQUEST_TIMEOUT_RESPONSE, payload_too_large_response

CONTINUE_RESPONSE = b"HTTP/1.1 100 Continue\r\n\r\n"
# The code websockets and uvicorn give a disconnect when no close frame came: "no status".
NO_STATUS_RECEIVED = 1005
ABNORMAL_CLOSURE = 1006


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools HTTP/1.1 with a deadline for request headers and a body cap.

    The header deadline runs from the moment the connection opens, and again from the end of each
    response while the connection waits for the next request; it stops when a request's headers
    are complete (a slow body or a slow application are not its business). A declared
    ``Content-Length`` over the cap is answered 413 before the application starts; a body without
    one (chunked) is held, counted, until it is complete, then given to the application with its
    ``Content-Length`` (Django reads CONTENT_LENGTH bytes and would see an empty body), or refused
    at the cap.
    """

    header_timeout: float = 10.0  # set by ``serve`` from HTTP_HEADER_TIMEOUT
    max_body_bytes: int = 64 * 1024  # set by ``serve`` from MAX_REQUEST_BODY_BYTES

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.refused = False  # the server answered and is closing: every further byte is discarded
        self._header_deadline: asyncio.TimerHandle | None = None
        self._abort_handle: asyncio.TimerHandle | None = None
        self._headers_pending = False  # some bytes of a request whose headers are not complete
        self._in_body = False  # between a request's headers and its end
        self._held_body: bytearray | None = None  # a body without a length, until it is complete
        self._body_bytes = 0

    # --- the connection ---------------------------------------------------------------------

    def connection_made(self, transport):
        super().connection_made(transport)
        self._await_headers()

    def connection_lost(self, exc):
        self._stop_header_deadline()
        if self._abort_handle is not None:
            self._abort_handle.cancel()
            self._abort_handle = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self.refused:
            super().data_received(data)

    # --- httptools' callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.refused:
            return
        super().on_message_begin()
        self._headers_pending = True
        self._body_bytes = 0
        self._held_body = None

    def on_headers_complete(self) -> None:
        if self.refused:
            return
        self._stop_header_deadline()
        self._headers_pending = False
        self._in_body = True
        if self.parser.should_upgrade() and self._should_upgrade():
            super().on_headers_complete()  # a WebSocket handshake: no body
            return
        declared = None
        without_length = False
        for name, value in self.headers:
            if name == b"content-length":
                declared = int(value) if value.strip().isdigit() else None
            elif name == b"transfer-encoding":
                without_length = True
        if declared is not None and declared > self.max_body_bytes:
            self.refuse_body()  # before "100 Continue", before the application starts
            return
        if without_length:
            self._held_body = bytearray()
            if self.expect_100_continue:  # the application starts only once the body is here
                self.expect_100_continue = False
                self.transport.write(CONTINUE_RESPONSE)
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self.refused:
            return
        self._body_bytes += len(body)
        if self._body_bytes > self.max_body_bytes:
            self.refuse_body()
            return
        if self._held_body is not None:
            self._held_body += body
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self.refused:
            return
        self._in_body = False
        if self._held_body is not None:
            body, self._held_body = bytes(self._held_body), None
            self.headers[:] = [
                (name, value) for name, value in self.headers if name not in (b"transfer-encoding", b"content-length")
            ]
            self.headers.append((b"content-length", str(len(body)).encode("ascii")))
            super().on_headers_complete()
            if body:
                super().on_body(body)
        super().on_message_complete()
        if self.cycle is not None and self.cycle.response_complete and not self.pipeline:
            self._await_headers()  # answered before its body was in: the next request's deadline

    def on_response_complete(self) -> None:
        waiting = bool(self.pipeline)  # the next request's headers are already in
        super().on_response_complete()
        if not (waiting or self.refused or self._in_body or self.transport.is_closing()):
            self._await_headers()

    # --- the limits -------------------------------------------------------------------------

    def refuse_body(self) -> None:
        """Answer 413 and close; nothing more of the request reaches the application."""
        if self.refused:
            return
        self.refused = True
        self._stop_header_deadline()
        raw_id = next((value for name, value in self.headers if name == b"x-request-id"), b"")
        request_id = request_id_from_header(raw_id.decode("latin-1") or None)
        self.transport.write(payload_too_large_response(max_bytes=self.max_body_bytes, request_id=request_id))
        self._close()

    def _await_headers(self) -> None:
        self._stop_header_deadline()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _stop_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.refused or self.transport.is_closing():
            return
        self.refused = True
        if self._headers_pending:
            self.transport.write(REQUEST_TIMEOUT_RESPONSE)
        self._close()

    def _close(self) -> None:
        # Reading stops here; bytes the peer still sends are not read (the kernel resets the
        # connection on close, after what was written has gone out).
        self.transport.close()
        self._abort_handle = self.loop.call_later(ABORT_AFTER, self._abort)

    def _abort(self) -> None:
        self._abort_handle = None
        self.transport.abort()


class KeepaliveWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets (sans-I/O) protocol, pinged on uvicorn's timer, that drops a peer
    whose ping went unanswered and tells the application with code 4408, and tells it 1006 for a
    TCP connection lost without a close frame (as daphne does)."""

    ping_timed_out = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # websockets logs every handshake header and frame at DEBUG (uvicorn hands it the
        # "uvicorn.error" logger): the bearer token (Authorization, Sec-WebSocket-Protocol) and
        # the signaling itself would be in the log at LOG_LEVEL=DEBUG. Never.
        self.conn.debug = False

    def keepalive_timeout(self) -> None:
        # As daphne: the transport is aborted, no closing handshake with a peer that stopped answering.
        self.pong_timer = None
        self.pending_ping_payload = None
        if self.close_sent or self.transport.is_closing():
            return
        self.ping_timed_out = True
        self.transport.abort()

    async def receive(self):
        message = await super().receive()
        if message["type"] == "websocket.disconnect":
            if self.ping_timed_out:
                message = {**message, "code": PING_TIMEOUT_DISCONNECT_CODE}
            elif message.get("code") == NO_STATUS_RECEIVED and self.conn.close_rcvd is None:
                message = {**message, "code": ABNORMAL_CLOSURE}
        return message


def serve(
    application,
    *,
    host: str,
    port: int,
    fd: int | None,
    header_timeout: float,
    max_body_bytes: int,
    ping_interval: float,
    ping_timeout: float,
    max_message_bytes: int,
) -> None:
    """Serve ``application`` on ``host:port``, or on the inherited listening socket ``fd``, until
    SIGTERM or SIGINT (then gracefully, and the process exits 0)."""
    http_protocol = type(
        "ProductionHttpProtocol",
        (GuardedHttpToolsProtocol,),
        {"header_timeout": header_timeout, "max_body_bytes": max_body_bytes},
    )
    config = uvicorn.Config(
        application,
        host=host,
        port=port,
        loop="uvloop",
        http=http_protocol,
        ws=KeepaliveWebSocketProtocol,
        ws_max_size=max_message_bytes,
        ws_ping_interval=ping_interval,
        ws_ping_timeout=ping_timeout,
        # No permessage-deflate, as under daphne: a zlib context per socket costs memory and CPU,
        # and signaling messages are small.
        ws_per_message_deflate=False,
        lifespan="off",  # Django and Channels have no lifespan
        # The header deadline closes an idle keep-alive connection; uvicorn's own timer only after it.
        timeout_keep_alive=int(header_timeout) + 1,
        timeout_graceful_shutdown=5,
        # X-Forwarded-* is Django's to trust (NUM_PROXIES), never the server's.
        proxy_headers=False,
        server_header=False,
        log_config=None,  # Django's LOGGING: uvicorn's loggers go to the root handler
        backlog=2048,
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal that stopped it once it has shut down; ignored, the process exits 0.
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda signum, frame: None)
    # A worker's socket comes from the supervisor (``socket(fileno=...)`` finds its family itself).
    server.run(sockets=[socket.socket(fileno=fd)] if fd is not None else None)
