"""JSON Web Tokens, interoperable with the existing Go auth service.

HS256 with ``settings.JWT_SECRET``; audience ``secureconnect-api``, issuer
``secureconnect-auth``. Claims: ``user_id`` (= ``sub``), ``email``, ``username``, ``role``
(``user`` or ``admin``), ``jti``, ``iat``, ``exp`` and ``type`` (``access`` or ``refresh``).
A token without ``type`` (as the Go service issues them) is an access token.

Verifying a token never queries the database: the signature and claims are checked locally and
revocation is a cache lookup keyed by ``jti``, so calls keep working while the database is away.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from django.conf import settings
from django.core.cache import cache

ALGORITHM = "HS256"
AUDIENCE = "secureconnect-api"
ISSUER = "secureconnect-auth"
ACCESS = "access"
REFRESH = "refresh"
ROLE_USER = "user"
ROLE_ADMIN = "admin"
CLOCK_SKEW_SECONDS = 10  # tolerated difference between our clock and the Go service's
_REQUIRED_CLAIMS = ["exp", "iat", "jti", "user_id", "aud", "iss"]
_REVOKED_KEY = "jwt:revoked:{jti}"


class InvalidToken(Exception):
    """The token cannot be used; ``str(exc)`` is a short message fit for a client."""

    def __init__(self, message: str = "Invalid token"):
        super().__init__(message)


class TokenExpired(InvalidToken):
    def __init__(self, message: str = "Token has expired"):
        super().__init__(message)


class TokenRevoked(InvalidToken):
    def __init__(self, message: str = "Token has been revoked"):
        super().__init__(message)


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    email: str
    username: str
    role: str
    jti: str
    expires_at: datetime


@dataclass(frozen=True)
class RefreshClaims(AccessClaims):
    """The same identity, from a refresh token (a distinct type so one is never taken for the other)."""


def role_for(user) -> str:
    return ROLE_ADMIN if user.is_staff else ROLE_USER


def issue_token_pair(user) -> dict:
    """``{"access_token": ..., "refresh_token": ...}`` for ``user`` (a ``User``)."""
    identity = {"user_id": str(user.pk), "email": user.email, "username": user.username, "role": role_for(user)}
    return {
        "access_token": _encode(identity, token_type=ACCESS, ttl=settings.JWT_ACCESS_TTL),
        "refresh_token": _encode(identity, token_type=REFRESH, ttl=settings.JWT_REFRESH_TTL),
    }


def issue_access_token(*, user_id: uuid.UUID, email: str, username: str, role: str) -> str:
    """A new access token for an identity already established (by a refresh token)."""
    identity = {"user_id": str(user_id), "email": email, "username": username, "role": role}
    return _encode(identity, token_type=ACCESS, ttl=settings.JWT_ACCESS_TTL)


def decode_access_token(token: str) -> AccessClaims:
    """The claims of a valid, unrevoked access token; raises ``InvalidToken`` otherwise."""
    payload = _decode(token)
    if payload.get("type", ACCESS) != ACCESS:
        raise InvalidToken()
    claims = AccessClaims(**_identity(payload))
    if is_user_disabled(claims.user_id):
        raise TokenRevoked("This account is disabled.")
    return claims


def decode_refresh_token(token: str) -> RefreshClaims:
    """The claims of a valid, unrevoked refresh token; raises ``InvalidToken`` otherwise."""
    payload = _decode(token)
    if payload.get("type") != REFRESH:
        raise InvalidToken()
    return RefreshClaims(**_identity(payload))


def revoke(jti: str, expires_at: datetime) -> None:
    """Refuse the token ``jti`` from now on. The mark lives in the cache until the token would
    have expired anyway; a token already expired needs no mark."""
    remaining = (expires_at - datetime.now(UTC)).total_seconds() + CLOCK_SKEW_SECONDS
    if remaining > 0:
        cache.set(_REVOKED_KEY.format(jti=jti), True, timeout=int(remaining) + 1)


def is_revoked(jti: str) -> bool:
    return bool(cache.get(_REVOKED_KEY.format(jti=jti)))


def _encode(identity: dict, *, token_type: str, ttl: int) -> str:
    now = datetime.now(UTC)
    payload = {
        **identity,
        "sub": identity["user_id"],
        "type": token_type,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + timedelta(seconds=ttl),
        "aud": AUDIENCE,
        "iss": ISSUER,
    }
    return jwt.encode(payload, settings.JWT_SECRET, algorithm=ALGORITHM)


def _decode(token: str) -> dict:
    if not isinstance(token, str) or not token:
        raise InvalidToken()
    try:
        payload = jwt.decode(
            token,
            settings.JWT_SECRET,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=CLOCK_SKEW_SECONDS,
            options={"require": _REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError:
        raise TokenExpired() from None
    except jwt.PyJWTError:
        raise InvalidToken() from None
    if is_revoked(str(payload["jti"])):
        raise TokenRevoked()
    return payload


def _identity(payload: dict) -> dict:
    """The identity claims, checked: a UUID ``user_id`` that ``sub`` (when present) agrees with."""
    try:
        user_id = uuid.UUID(str(payload["user_id"]))
        subject = uuid.UUID(str(payload.get("sub", user_id)))
    except ValueError:
        raise InvalidToken() from None
    if subject != user_id:
        raise InvalidToken()
    strings = {name: payload.get(name, "") for name in ("email", "username")}
    if not all(isinstance(value, str) for value in strings.values()):
        raise InvalidToken()
    role = payload.get("role") or ROLE_USER
    if not isinstance(role, str):
        raise InvalidToken()
    return {
        "user_id": user_id,
        **strings,
        "role": role,
        "jti": str(payload["jti"]),
        "expires_at": datetime.fromtimestamp(payload["exp"], UTC),
    }


# --- disabled accounts: refused at once, on every instance, without a database query ------------

_DISABLED_KEY = "jwt:user-disabled:{user_id}"


def set_user_disabled(user_id, disabled: bool) -> None:
    """Mark (or unmark) an account as disabled: its tokens are refused and its open sockets close.

    The mark outlives every token issued before it (the refresh lifetime)."""
    key = _DISABLED_KEY.format(user_id=user_id)
    if disabled:
        cache.set(key, True, timeout=settings.JWT_REFRESH_TTL + CLOCK_SKEW_SECONDS)
    else:
        cache.delete(key)


def is_user_disabled(user_id) -> bool:
    return bool(cache.get(_DISABLED_KEY.format(user_id=user_id)))


def refused_sessions(sessions: list[tuple[str, str]]) -> tuple[set[str], set[str]]:
    """Of ``(jti, user_id)`` pairs: the revoked jtis and the disabled user ids, in one cache read."""
    keys = {_REVOKED_KEY.format(jti=jti): ("jti", jti) for jti, _ in sessions}
    keys.update({_DISABLED_KEY.format(user_id=user_id): ("user", str(user_id)) for _, user_id in sessions})
    found = cache.get_many(list(keys))
    revoked = {keys[k][1] for k, v in found.items() if v and keys[k][0] == "jti"}
    disabled = {keys[k][1] for k, v in found.items() if v and keys[k][0] == "user"}
    return revoked, disabled
