"""The service's production server: ``python -m secureconnect.server``.

``secureconnect.asgi:application`` (``settings.ASGI_APPLICATION``) served by uvicorn on uvloop and
httptools (``SERVER_IMPLEMENTATION=uvicorn``, the default: ``secureconnect.server.uvicorn_protocols``)
or by daphne (``SERVER_IMPLEMENTATION=daphne``: ``secureconnect.server.protocols``), with the limits
that only the server can enforce, the same under both, each read from the environment by
``secureconnect/settings.py``:

- ``MAX_REQUEST_BODY_BYTES``: a declared ``Content-Length`` over it is answered 413 in the API's
  error envelope before any of the body is read; a chunked body is counted as it arrives and
  refused at the cap (held until complete, then given to the application with its length).
  Twisted's own request would buffer the whole body first; uvicorn would stream any length.
- ``HTTP_HEADER_TIMEOUT``: a connection whose request headers are not complete that many seconds
  after it opened (or after its previous response) is closed.
- ``WS_PING_INTERVAL`` / ``WS_PING_TIMEOUT``: every WebSocket is pinged at the protocol level
  and dropped when a ping goes unanswered (within interval + timeout of the last sign of life).
  Application silence never closes a socket here.
- WebSocket frames and messages are capped at the signaling protocol's ``MAX_MESSAGE_BYTES``
  when their header arrives, before the payload is buffered (close code 1009).

This module holds only names other code reads and imports neither Twisted nor uvicorn; the
disconnect code is the signaling protocol's own (``signaling.protocol.PING_TIMEOUT_DISCONNECT``),
defined there once. The raw 408 and 413 both servers write are ``secureconnect.server.responses``.
"""

# The ``code`` of the ``websocket.disconnect`` the application receives when the server dropped
# the socket because the peer stopped answering protocol pings (never sent on the wire: the
# transport is aborted). The peer was last heard from at most WS_PING_INTERVAL before the
# unanswered ping, i.e. before ``detection time - WS_PING_TIMEOUT``. Every other drop keeps
# daphne's code under both servers: 1006 for a lost TCP connection, the peer's close code for a
# clean close.
from signaling.protocol import PING_TIMEOUT_DISCONNECT as PING_TIMEOUT_DISCONNECT_CODE

__all__ = ["PING_TIMEOUT_DISCONNECT_CODE"]
