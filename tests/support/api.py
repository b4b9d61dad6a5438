"""Small helpers for API tests: bearer headers, tokens made by hand as the Go auth service
makes them, and the envelope's parts."""

import uuid
from datetime import UTC, datetime, timedelta

import jwt
from django.conf import settings
from rest_framework.settings import api_settings

from accounts.tokens import AUDIENCE, ISSUER


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def legacy_claims(user=None, **overrides) -> dict:
    """The claims the Go auth service puts in an access token (no ``type``)."""
    now = datetime.now(UTC)
    user_id = str(user.id) if user is not None else str(uuid.uuid4())
    claims = {
        "user_id": user_id,
        "email": user.email if user is not None else "legacy@example.test",
        "username": user.username if user is not None else "legacy",
        "role": "user",
        "sub": user_id,
        "jti": uuid.uuid4().hex,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=15)).timestamp()),
        "aud": AUDIENCE,
        "iss": ISSUER,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def hand_made_token(claims: dict, *, secret: str | None = None, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret or settings.JWT_SECRET, algorithm=algorithm)


def post_json(client, path: str, body=None, **kwargs):
    return client.post(path, data=body if body is not None else {}, content_type="application/json", **kwargs)


def throttle_rates(**overrides) -> dict:
    """``REST_FRAMEWORK`` with some throttle rates replaced, for ``override_settings``."""
    return {
        **api_settings.user_settings,
        "DEFAULT_THROTTLE_RATES": {**api_settings.DEFAULT_THROTTLE_RATES, **overrides},
    }
