"""SERVER_IMPLEMENTATION=daphne: daphne's Server, HTTP channel, request and WebSocket protocol with
the production limits.

daphne 4.2 builds its factories inside ``Server.run``; ``ProductionServer.run`` follows daphne
4.2.3's, building the subclasses below instead (check it again when daphne is upgraded).
"""

import daphne.server  # noqa: F401, I001 - first: installs Twisted's asyncio reactor before Twisted is imported

import asyncio
import logging

from daphne.http_protocol import HTTPFactory, WebRequest
from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.logger import globalLogBeginner
from twisted.web import http

from core.api.request_id import request_id_from_header
from secureconnect.server import PING_TIMEOUT_DISCONNECT_CODE
from secureconnect.server.responses import ABORT_AFTER, REQUEST_TIMEOUT_RESPONSE, payload_too_large_response

logger = logging.getLogger(__name__)


class GuardedHTTPChannel(http.HTTPChannel):
    """HTTP/1.1 with a deadline for request headers and a body cap enforced as the body streams.

    The header deadline runs from the moment the connection opens, and again from the end of each
    response while the connection waits for the next request; it stops when a request's headers
    are complete (a slow body or a slow application are not its business).
    """

    _header_deadline = None  # the IDelayedCall while waiting for a request's headers
    _partial_request = False  # some bytes of the awaited request have arrived
    refused = False  # the server answered and is closing: every further byte is discarded (not read)
    _abort_call = None

    def connectionMade(self):
        super().connectionMade()
        self._await_headers()

    def dataReceived(self, data):
        if self.refused:
            return
        if self._header_deadline is not None and data:
            self._partial_request = True
        super().dataReceived(data)

    def allHeadersReceived(self):
        self._stop_header_deadline()
        limit = self.factory.server.max_request_body_bytes
        if self.length is not None and self.length > limit:  # None: chunked, counted as it comes
            self.refuse_body(self.requests[-1])
            return  # before Twisted sends "100 Continue" or makes room for the body
        super().allHeadersReceived()

    def rawDataReceived(self, data):
        if not self.refused:
            super().rawDataReceived(data)

    def allContentReceived(self):
        if not self.refused:
            super().allContentReceived()

    def requestDone(self, request):
        # Before Twisted replays pipelined data: their headers may complete within this call.
        if self.persistent and not self.refused:
            self._await_headers()
        super().requestDone(request)

    def connectionLost(self, reason):
        self._stop_header_deadline()
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        super().connectionLost(reason)

    def refuse_body(self, request) -> None:
        """Answer 413 and close; nothing of the request reaches the application."""
        if self.refused:
            return
        self.refused = True
        raw_id = request.requestHeaders.getRawHeaders(b"x-request-id", [b""])[0]
        request_id = request_id_from_header(raw_id.decode("latin-1") or None)
        self.transport.write(
            payload_too_large_response(max_bytes=self.factory.server.max_request_body_bytes, request_id=request_id)
        )
        self._close()

    def _await_headers(self) -> None:
        self._stop_header_deadline()
        self._partial_request = False
        self._header_deadline = self.callLater(self.factory.server.http_header_timeout, self._headers_too_slow)

    def _stop_header_deadline(self) -> None:
        if self._header_deadline is not None:
            if self._header_deadline.active():
                self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.transport is None or self.refused:
            return
        self.refused = True
        if self._partial_request:
            self.transport.write(REQUEST_TIMEOUT_RESPONSE)
        self._close()

    def _close(self) -> None:
        # Reading stops here; bytes the peer still sends are not read (the kernel resets the
        # connection on close, after what was written has gone out).
        self.transport.loseConnection()
        self._abort_call = self.callLater(ABORT_AFTER, self._abort)

    def _abort(self) -> None:
        self._abort_call = None
        if self.transport is not None:
            self.transport.abortConnection()


class CappedRequest(WebRequest):
    """daphne's request, counting the body as it arrives (chunked bodies have no length upfront)."""

    body_bytes = 0

    def handleContentChunk(self, data):
        if self.channel is None or self.channel.refused:
            return
        self.body_bytes += len(data)
        if self.body_bytes > self.server.max_request_body_bytes:
            self.channel.refuse_body(self)
            return
        super().handleContentChunk(data)

    def requestReceived(self, command, path, version):
        if self.requestHeaders.hasHeader(b"transfer-encoding"):
            # The chunked body is complete and counted: the application gets it with its length,
            # like any other (Django reads CONTENT_LENGTH bytes and would see an empty body).
            self.requestHeaders.removeHeader(b"transfer-encoding")
            self.requestHeaders.setRawHeaders(b"content-length", [str(self.body_bytes).encode("ascii")])
        super().requestReceived(command, path, version)


class GuardedHTTPFactory(HTTPFactory):
    protocol = GuardedHTTPChannel  # HTTP/1.1 only: TLS (and with it HTTP/2) ends at the proxy

    def buildProtocol(self, addr):
        channel = super().buildProtocol(addr)
        channel.requestFactory = CappedRequest
        return channel


class KeepaliveWebSocketProtocol(WebSocketProtocol):
    """daphne's WebSocket protocol, pinged by autobahn on its own timer, that tells the
    application when it dropped the socket for an unanswered ping."""

    ping_timed_out = False

    def onAutoPingTimeout(self):
        self.ping_timed_out = True
        super().onAutoPingTimeout()

    def onClose(self, wasClean, code, reason):
        if self.ping_timed_out:
            code = PING_TIMEOUT_DISCONNECT_CODE
        super().onClose(wasClean, code, reason)

    def check_timeouts(self):
        """daphne's checks, without its own pings: daphne pings only after ``ping_interval`` of
        inbound silence and on a 2 s tick; autobahn's ``autoPingInterval`` pings on time."""
        if self.server.websocket_timeout >= 0 and self.duration() > self.server.websocket_timeout:
            self.serverClose()
        if (
            self.state == self.STATE_CONNECTING
            and self.duration() > self.server.websocket_connect_timeout
            and hasattr(self, "handshake_deferred")
        ):
            self.serverReject()


class KeepaliveWebSocketFactory(WebSocketFactory):
    protocol = KeepaliveWebSocketProtocol


class ProductionServer(Server):
    """daphne's Server with the header deadline, the body cap and protocol-level keepalive."""

    def __init__(self, application, *, http_header_timeout: float, max_request_body_bytes: int, **kwargs):
        super().__init__(application, **kwargs)
        self.http_header_timeout = http_header_timeout
        self.max_request_body_bytes = max_request_body_bytes

    def run(self):
        # As daphne 4.2.3's Server.run, with the factories above and autobahn's own ping timer.
        self.connections = {}
        self.http_factory = GuardedHTTPFactory(self)
        self.ws_factory = KeepaliveWebSocketFactory(self, server=self.server_name)
        self.ws_factory.setProtocolOptions(
            autoPingInterval=self.ping_interval,
            autoPingTimeout=self.ping_timeout,
            allowNullOrigin=True,
            openHandshakeTimeout=self.websocket_handshake_timeout,
            maxMessagePayloadSize=self.websocket_max_message_size,
            maxFramePayloadSize=self.websocket_max_frame_size,
            # A protocol violation (a frame over the cap, invalid UTF-8) gets a close frame with
            # its code (1009, 1007, ...) rather than a bare TCP reset, so the client can tell why.
            failByDrop=False,
        )
        if self.verbosity <= 1:
            globalLogBeginner.beginLoggingTo([lambda _: None], redirectStandardIO=False, discardBuffer=True)
        reactor.callLater(1, self.application_checker)
        reactor.callLater(2, self.timeout_checker)
        for socket_description in self.endpoints:
            logger.info("Configuring endpoint %s", socket_description)
            listener = serverFromString(reactor, str(socket_description)).listen(self.http_factory)
            listener.addCallback(self.listen_success)
            listener.addErrback(self.listen_error)
            self.listeners.append(listener)
        asyncio.set_event_loop(reactor._asyncioEventloop)
        reactor.addSystemEventTrigger("before", "shutdown", self.kill_all_applications)
        if not self.abort_start:
            if self.ready_callable:
                self.ready_callable()
            reactor.run(installSignalHandlers=self.signal_handlers)
