"""Bearer-token authentication for the API: the user comes from the token, not the database."""

from __future__ import annotations

import uuid

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from accounts.tokens import ROLE_ADMIN, AccessClaims, InvalidToken, decode_access_token
from core.api.throttles import admit_user_request


class TokenUser:
    """The authenticated caller as the access token describes them; no database row is loaded.

    Code that needs the ``User`` row looks it up by ``id`` (``accounts.selectors.user_get_active``);
    foreign keys take ``<field>_id=request.user.id``.
    """

    is_authenticated = True
    is_anonymous = False
    is_active = True

    def __init__(self, claims: AccessClaims):
        self.claims = claims
        self.id: uuid.UUID = claims.user_id
        self.pk: uuid.UUID = claims.user_id
        self.email = claims.email
        self.username = claims.username
        self.role = claims.role
        self.is_staff = claims.role == ROLE_ADMIN

    def get_username(self) -> str:
        return self.username

    def __eq__(self, other) -> bool:
        return isinstance(other, TokenUser) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __str__(self) -> str:
        return self.username

    def __repr__(self) -> str:
        return f"<TokenUser {self.id} {self.username!r}>"


class JWTAuthentication(BaseAuthentication):
    """``Authorization: Bearer <access token>``. No header means anonymous (the permission
    then answers 401); a header with a bad token is refused with 401 at once.

    The token's revocation marks and the view's per-user rate limits are one Redis round trip
    (``core.api.throttles.admit_user_request``); a refused token is not counted."""

    keyword = "Bearer"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Invalid Authorization header; expected 'Bearer <token>'.")
        try:
            claims = decode_access_token(
                parts[1].decode("ascii"),
                check_marks=lambda user_id, marks: admit_user_request(request, user_id=user_id, marks=marks),
            )
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid token") from None
        except InvalidToken as exc:
            raise AuthenticationFailed(str(exc)) from None
        return TokenUser(claims), claims

    def authenticate_header(self, request) -> str:
        return self.keyword


class JWTAuthenticationScheme(OpenApiAuthenticationExtension):
    """How drf-spectacular documents ``JWTAuthentication`` (registered by being imported)."""

    target_class = JWTAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
