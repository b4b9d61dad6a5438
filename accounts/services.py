"""Writes of accounts: registration, login, token refresh and logout.

Tokens are verified without the database (``accounts.tokens``). Registration and login need
it; refresh prefers it (a disabled account cannot refresh) but carries on from the refresh
token's claims while the database is away, so calls keep working through an outage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError
from django.utils import timezone

from accounts import tokens
from accounts.emails import canonical_email
from accounts.exceptions import AccountAlreadyExists, InvalidCredentials, NotYourToken
from accounts.models import User
from accounts.selectors import user_get_active
from core.transactions import run_in_transaction

logger = logging.getLogger(__name__)
EMAIL_MAX_LENGTH = User._meta.get_field("email").max_length


@dataclass(frozen=True)
class LoginResult:
    user: User
    access_token: str
    refresh_token: str


def user_register(*, email: str, username: str, password: str, display_name: str = "") -> User:
    """Create an account. Django's password validators run first (``ValidationError`` on
    ``password``), then uniqueness of the canonical email (``accounts.emails``) and of the
    username, case-insensitively (``AccountAlreadyExists`` naming the taken fields)."""
    email = canonical_email(email)
    candidate = User(email=email, username=username, display_name=display_name)
    try:
        validate_password(password, user=candidate)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from None

    if len(email) > EMAIL_MAX_LENGTH:
        # NFKC can lengthen an address (one ligature becomes several letters).
        raise ValidationError({"email": [f"Ensure this field has no more than {EMAIL_MAX_LENGTH} characters."]})
    _check_available(email=email, username=username)
    candidate.set_password(password)
    try:
        run_in_transaction(lambda: candidate.save(force_insert=True))
    except IntegrityError:
        # Someone registered the same email or username since the check above.
        _check_available(email=email, username=username)
        raise
    return candidate


def _check_available(*, email: str, username: str) -> None:
    taken = {}
    if User.objects.filter(email=email).exists():
        taken["email"] = ["An account with this email already exists."]
    if User.objects.filter(username__iexact=username).exists():
        taken["username"] = ["This username is taken."]
    if taken:
        raise AccountAlreadyExists(details=taken)


def user_login(*, email: str, password: str) -> LoginResult:
    """Tokens for the active account with this email and password; ``InvalidCredentials``
    otherwise, with the same message (and about the same time) whichever part was wrong.
    The account is found by the exact canonical form of ``email``, never by a database-side
    case-insensitive match."""
    user = User.objects.filter(email=canonical_email(email)).first()
    if user is None:
        User().set_password(password)  # spend the hashing time an existing account would
        raise InvalidCredentials()
    if not user.check_password(password) or not user.is_active:
        raise InvalidCredentials()
    User.objects.filter(pk=user.pk).update(last_login=timezone.now())
    return LoginResult(user=user, **tokens.issue_token_pair(user))


def token_refresh(*, refresh_token: str) -> dict:
    """A new token pair for a valid, unrevoked, unspent refresh token (``InvalidToken``
    otherwise). The refresh token is spent: presented again, it revokes its whole family
    (``tokens.RefreshTokenReused``), so a stolen copy works at most until the owner's next
    refresh, and then neither works.

    The account is read to pick up a changed email or username and to refuse a deleted or
    disabled one (``AccountUnavailable``). When the database cannot be reached, the identity
    in the refresh token is used instead.
    """
    claims = tokens.decode_refresh_token(refresh_token)
    try:
        user = user_get_active(user_id=claims.user_id)
    except DatabaseError as exc:
        logger.warning("Database unreachable on token refresh, using the token's claims: %s", exc)
        identity = {"email": claims.email, "username": claims.username, "role": claims.role}
    else:
        identity = {"email": user.email, "username": user.username, "role": tokens.role_for(user)}
    tokens.refresh_token_spend(claims)
    return tokens.issue_rotated_pair(user_id=claims.user_id, family=claims.family, **identity)


def user_logout(*, access_claims: tokens.AccessClaims, refresh_token: str | None = None) -> None:
    """End the caller's session: revoke the access token they called with, every token of its
    family (the session it belongs to) and, when given, the refresh token and its family.

    A refresh token that is malformed or signed by someone else is a ``ValidationError``; one
    of another account is ``NotYourToken`` and nothing is revoked; an expired or already
    revoked one needs no revoking, and the access token is revoked all the same.
    """
    refresh = None
    if refresh_token is not None:
        try:
            refresh = tokens.decode_refresh_token(refresh_token)
        except (tokens.TokenExpired, tokens.TokenRevoked):
            refresh = None
        except tokens.InvalidToken as exc:
            raise ValidationError({"refresh_token": [str(exc)]}) from None
    if refresh is not None:
        if refresh.user_id != access_claims.user_id:
            raise NotYourToken()
        tokens.revoke(refresh.jti, refresh.expires_at)
        tokens.family_revoke(refresh.family)
    tokens.family_revoke(access_claims.family)
    tokens.revoke(access_claims.jti, access_claims.expires_at)
