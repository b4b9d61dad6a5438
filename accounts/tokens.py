"""JSON Web Tokens, interoperable with the existing Go auth service.

HS256 with ``settings.JWT_SECRET``; audience ``secureconnect-api``, issuer
``secureconnect-auth``. Claims: ``user_id`` (= ``sub``), ``email``, ``username``, ``role``
(``user`` or ``admin``), ``jti``, ``iat``, ``exp`` and ``type`` (``access`` or ``refresh``).
A token without ``type`` (as the Go service issues them) is an access token.

Our tokens also carry ``fam``, the session (token family) a log-in starts: every token pair
refreshed from it carries the same ``fam``. Refresh tokens rotate: each is spent by its first
use (``refresh_token_spend``) and answered with a new pair; a spent one presented again means
it was copied, and the whole family is revoked, access tokens included. A refresh token without
``fam`` (issued before families existed) is its own family, named by its ``jti``.

Verifying a token never queries the database: the signature and claims are checked locally and
revocation is a cache lookup keyed by ``jti`` and ``fam``, so calls keep working while the
database is away. The cache is Redis when ``REDIS_URL`` is set (shared by every process);
without it each process has its own, and a copied refresh token is caught only by the process
that saw both uses.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from django.conf import settings
from django.core.cache import cache

from core.exceptions import ApplicationError

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
_FAMILY_REVOKED_KEY = "jwt:revoked-family:{family}"
_SPENT_KEY = "jwt:spent:{jti}"


class InvalidToken(ApplicationError):
    """The token cannot be used; ``str(exc)`` is a short message fit for a client."""

    code = "UNAUTHORIZED"

    def __init__(self, message: str = "Invalid token"):
        super().__init__(message)


class TokenExpired(InvalidToken):
    def __init__(self, message: str = "Token has expired"):
        super().__init__(message)


class TokenRevoked(InvalidToken):
    def __init__(self, message: str = "Token has been revoked"):
        super().__init__(message)


class RefreshTokenReused(TokenRevoked):
    """A refresh token already exchanged was presented again: its family is now revoked."""

    def __init__(self, message: str = "Refresh token already used; the session has been revoked"):
        super().__init__(message)


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    email: str
    username: str
    role: str
    jti: str
    expires_at: datetime
    family: str | None = None  # ``fam``; None for access tokens of the Go service


@dataclass(frozen=True)
class RefreshClaims(AccessClaims):
    """The same identity, from a refresh token (a distinct type so one is never taken for the other)."""


def role_for(user) -> str:
    return ROLE_ADMIN if user.is_staff else ROLE_USER


def issue_token_pair(user) -> dict:
    """``{"access_token": ..., "refresh_token": ...}`` for ``user`` (a ``User``): a new family."""
    return issue_rotated_pair(
        user_id=user.pk, email=user.email, username=user.username, role=role_for(user), family=uuid.uuid4().hex
    )


def issue_rotated_pair(*, user_id: uuid.UUID, email: str, username: str, role: str, family: str) -> dict:
    """A token pair of the family ``family`` (a spent refresh token's, see ``refresh_token_spend``)."""
    identity = {"user_id": str(user_id), "email": email, "username": username, "role": role, "fam": family}
    return {
        "access_token": _encode(identity, token_type=ACCESS, ttl=settings.JWT_ACCESS_TTL),
        "refresh_token": _encode(identity, token_type=REFRESH, ttl=settings.JWT_REFRESH_TTL),
    }


def issue_access_token(*, user_id: uuid.UUID, email: str, username: str, role: str) -> str:
    """A new access token for an identity already established (by a refresh token)."""
    identity = {"user_id": str(user_id), "email": email, "username": username, "role": role}
    return _encode(identity, token_type=ACCESS, ttl=settings.JWT_ACCESS_TTL)


# Given a user id and the cache keys that refuse their token, the keys that are set (None: not read).
MarkCheck = Callable[[uuid.UUID, list[str]], set[str] | None]


def decode_access_token(token: str, *, check_marks: MarkCheck | None = None) -> AccessClaims:
    """The claims of a valid, unrevoked access token; raises ``InvalidToken`` otherwise.

    The token's, its session's and its account's marks are read in one cache round trip (every
    request pays it): by ``check_marks(user_id, marks)`` when given (the API's authentication,
    which counts the request's rate limits in the same trip: ``core.api.throttles``), which
    answers the marks found, or None to leave the reading to this function."""
    payload = _decode(token, check_revoked=False)
    if payload.get("type", ACCESS) != ACCESS:
        raise InvalidToken()
    claims = AccessClaims(**_identity(payload))
    marks = _session_marks(claims.jti, claims.family, str(claims.user_id))
    found = check_marks(claims.user_id, list(marks)) if check_marks is not None else None
    if found is None:
        found = _marks_found(marks)
    kinds = {marks[key][0] for key in found}
    if kinds & {"jti", "family"}:
        raise TokenRevoked()
    if "user" in kinds:
        raise TokenRevoked("This account is disabled.")
    return claims


def decode_refresh_token(token: str) -> RefreshClaims:
    """The claims of a valid, unrevoked refresh token; raises ``InvalidToken`` otherwise."""
    payload = _decode(token)
    if payload.get("type") != REFRESH:
        raise InvalidToken()
    identity = _identity(payload)
    return RefreshClaims(**{**identity, "family": identity["family"] or identity["jti"]})


def refresh_token_spend(claims: RefreshClaims) -> None:
    """Mark the refresh token as used, atomically (``cache.add``). Its second use raises
    ``RefreshTokenReused`` after revoking its whole family."""
    remaining = _seconds_until(claims.expires_at)
    if remaining <= 0:
        raise TokenExpired()
    if not cache.add(_SPENT_KEY.format(jti=claims.jti), True, timeout=remaining):
        family_revoke(claims.family)
        raise RefreshTokenReused()


def revoke(jti: str, expires_at: datetime) -> None:
    """Refuse the token ``jti`` from now on. The mark lives in the cache until the token would
    have expired anyway; a token already expired needs no mark."""
    remaining = _seconds_until(expires_at)
    if remaining > 0:
        cache.set(_REVOKED_KEY.format(jti=jti), True, timeout=remaining)


def family_revoke(family: str | None) -> None:
    """Refuse every token of the family (session) ``family``. Its tokens were issued before now
    and live at most ``JWT_REFRESH_TTL``, so the mark lives that long."""
    if family:
        timeout = max(settings.JWT_REFRESH_TTL, settings.JWT_ACCESS_TTL) + CLOCK_SKEW_SECONDS + 1
        cache.set(_FAMILY_REVOKED_KEY.format(family=family), True, timeout=timeout)


def is_revoked(jti: str, family: str | None = None) -> bool:
    keys = [_REVOKED_KEY.format(jti=jti)]
    if family:
        keys.append(_FAMILY_REVOKED_KEY.format(family=family))
    return any(cache.get_many(keys).values())


def _seconds_until(expires_at: datetime) -> int:
    remaining = (expires_at - datetime.now(UTC)).total_seconds() + CLOCK_SKEW_SECONDS
    return int(remaining) + 1 if remaining > 0 else 0


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


def _decode(token: str, *, check_revoked: bool = True) -> dict:
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
    except (jwt.PyJWTError, OverflowError, TypeError, ValueError):
        # Defensive: PyJWT turns numeric claims into numbers with int(), which can raise more.
        raise InvalidToken() from None
    family = payload.get("fam")
    if family is not None and (not isinstance(family, str) or not family):
        raise InvalidToken()
    if check_revoked and is_revoked(str(payload["jti"]), family or str(payload["jti"])):
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
        "expires_at": _expiry(payload["exp"]),
        "family": payload.get("fam"),
    }


def _expiry(exp) -> datetime:
    """``exp`` as a datetime: a finite number of seconds (PyJWT accepts ``"exp": "1900000000"``,
    a string, which is no NumericDate)."""
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        raise InvalidToken()
    try:
        return datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidToken() from None


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


def _session_marks(jti: str, family: str | None, user_id: str) -> dict[str, tuple[str, str]]:
    """The cache keys whose presence refuses a token, each with what it marks: (``jti``, the
    token), (``family``, its session; a token with no ``fam`` is its own), (``user``, its account)."""
    return {
        _REVOKED_KEY.format(jti=jti): ("jti", jti),
        _FAMILY_REVOKED_KEY.format(family=family or jti): ("family", family or jti),
        _DISABLED_KEY.format(user_id=user_id): ("user", str(user_id)),
    }


def _marks_found(marks) -> set[str]:
    return {key for key, value in cache.get_many(list(marks)).items() if value}


def refused_sessions(sessions: list[tuple[str, str | None, str]]) -> tuple[set[str], set[str]]:
    """Of ``(jti, family, user_id)`` triples: the jtis revoked (themselves, or their family) and
    the disabled user ids, in one cache read."""
    keys: dict[str, tuple[str, str]] = {}
    for jti, family, user_id in sessions:
        keys.update(_session_marks(jti, family, user_id))
    found = {keys[k] for k in _marks_found(keys)}
    revoked = {jti for jti, family, _ in sessions if ("jti", jti) in found or ("family", family or jti) in found}
    disabled = {value for kind, value in found if kind == "user"}
    return revoked, disabled
