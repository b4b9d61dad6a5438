"""Who is at the other end of a socket, from the handshake alone (no database query): the
access token, the Origin, and what the query string asks for.

Native clients send ``Authorization: Bearer <token>``. Browsers cannot set headers on a
WebSocket, so they offer the token as a subprotocol pair, ``new WebSocket(url, ["bearer",
token])``, and the server accepts the ``bearer`` subprotocol (never echoing the token). Tokens
in the query string are refused: URLs end up in access logs. Nothing here logs a token.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from accounts.tokens import AccessClaims, InvalidToken, decode_access_token
from signaling.protocol import BAD_REQUEST, FORBIDDEN, UNAUTHENTICATED, UNAVAILABLE, Refused

BEARER_SUBPROTOCOL = "bearer"
QUERY_TOKEN_NAMES = frozenset({"token", "access_token", "jwt", "bearer", "authorization", "auth"})
LOCAL_HOSTNAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def scope_header(scope, name: str) -> str | None:
    """The first value of header ``name`` (lower case), decoded as latin-1 like HTTP; None when absent."""
    wanted = name.encode("latin-1")
    for key, value in scope.get("headers", ()):
        if key.lower() == wanted:
            return value.decode("latin-1")
    return None


def accepted_subprotocol(scope) -> str | None:
    """``bearer`` when the client offered it (a browser then sees our close code), else none."""
    return BEARER_SUBPROTOCOL if BEARER_SUBPROTOCOL in scope.get("subprotocols", ()) else None


def query_params(scope) -> dict[str, list[str]]:
    """The query string, refusing any token in it."""
    raw = scope.get("query_string", b"")
    params = parse_qs(raw.decode("latin-1") if isinstance(raw, bytes) else raw, keep_blank_values=True)
    if QUERY_TOKEN_NAMES & {name.lower() for name in params}:
        raise Refused(
            BAD_REQUEST, "Tokens are not accepted in the URL; send an Authorization header or the bearer subprotocol."
        )
    return params


def call_id_from_query(scope) -> str:
    values = query_params(scope).get("call_id", [])
    if len(values) != 1:
        raise Refused(BAD_REQUEST, "Give exactly one call_id in the query string.")
    try:
        return str(uuid.UUID(values[0]))
    except ValueError:
        raise Refused(BAD_REQUEST, "call_id must be a UUID.") from None


def origin_check(scope) -> None:
    """A browser's Origin must be this service's own (the web client at /app/), in
    CORS_ALLOWED_ORIGINS, or localhost outside production. Clients that send no Origin (native
    apps, servers) are let through to authentication."""
    origin = scope_header(scope, "origin")
    if origin is None:
        return
    normalized = origin.strip().rstrip("/").lower()
    allowed = {o.strip().rstrip("/").lower() for o in settings.CORS_ALLOWED_ORIGINS}
    if normalized in allowed or is_same_origin(scope, normalized):
        return
    if not settings.IS_PRODUCTION:
        try:
            parts = urlsplit(normalized)
        except ValueError:  # "http://[::1": not a URL, so not an allowed origin
            parts = None
        if parts and parts.scheme in ("http", "https") and parts.hostname in LOCAL_HOSTNAMES:
            return
    raise Refused(FORBIDDEN, "This Origin is not allowed to open signaling sockets.")


def is_same_origin(scope, origin: str) -> bool:
    """The Origin names the host and port this socket was opened on (its Host header, one of
    ALLOWED_HOSTS), with the matching scheme: https for wss, http for ws."""
    host = scope_header(scope, "host")
    if not host or not validate_host(split_domain_port(host.lower())[0], settings.ALLOWED_HOSTS):
        return False
    try:
        parts = urlsplit(origin)
        origin_port = parts.port
    except ValueError:
        return False
    web_scheme = "https" if socket_is_secure(scope) else "http"
    if parts.scheme != web_scheme or not parts.hostname or parts.username or parts.path or parts.query:
        return False
    try:
        request = urlsplit(f"{web_scheme}://{host.lower()}")
        request_port = request.port
    except ValueError:
        return False
    default_port = 443 if web_scheme == "https" else 80
    return (parts.hostname, origin_port or default_port) == (request.hostname, request_port or default_port)


def socket_is_secure(scope) -> bool:
    """wss: the server itself speaks TLS, or a trusted proxy's SECURE_PROXY_SSL_HEADER says https."""
    if scope.get("scheme") == "wss":
        return True
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if not proxy_header:
        return False
    meta_name, secure_value = proxy_header
    value = scope_header(scope, meta_name.removeprefix("HTTP_").replace("_", "-").lower())
    # As Django reads it for HTTP: the first value of a comma-separated header.
    return value is not None and value.split(",", 1)[0].strip() == secure_value


def bearer_token(scope) -> str:
    header = scope_header(scope, "authorization")
    if header is not None:
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            raise Refused(UNAUTHENTICATED, "Invalid Authorization header; expected 'Bearer <token>'.")
        return parts[1]
    subprotocols = list(scope.get("subprotocols", ()))
    if BEARER_SUBPROTOCOL in subprotocols:
        index = subprotocols.index(BEARER_SUBPROTOCOL)
        if index + 1 < len(subprotocols):
            return subprotocols[index + 1]
        raise Refused(UNAUTHENTICATED, "The bearer subprotocol must be followed by the access token.")
    raise Refused(
        UNAUTHENTICATED, "Authentication required: an Authorization: Bearer header, or the bearer subprotocol."
    )


def socket_authenticate(scope) -> AccessClaims:
    """The access token's claims (signature and expiry checked locally; revocation is a cache
    lookup, so run this off the event loop). Raises ``InvalidToken``, or ``Refused`` (4401 for a
    missing or malformed credential, 4503 when the cache holding revocations cannot be read)."""
    token = bearer_token(scope)
    try:
        return decode_access_token(token)
    except InvalidToken:
        raise
    except Exception as exc:  # the revocation cache (Redis) is away: refuse clearly, log no token
        raise Refused(UNAVAILABLE, "Authentication is temporarily unavailable; reconnect shortly.") from exc


async def socket_authenticate_off_loop(scope) -> AccessClaims:
    """``socket_authenticate`` on the loop's thread pool, in the worker thread's own context.

    Not ``sync_to_async``: it copies the caller's context vars back into the socket's task
    afterwards, and Django's cache handler keeps its clients in context vars, so every socket
    held a cache client of its own (a Redis connection pool and an open connection, ~5 KiB,
    and a new connection to Redis in every handshake). In a pool thread the client is the
    thread's: a handful per process, their connections reused."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(socket_authenticate, scope))
