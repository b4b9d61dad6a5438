"""ICE servers for a client: STUN as configured, TURN with ephemeral credentials.

TURN credentials follow the TURN REST scheme coturn implements (``use-auth-secret``): the
username is ``<expiry unix time>:<user_id>`` and the credential is base64(HMAC-SHA1(secret,
username)). Several secrets may be configured for rotation; the first signs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from django.conf import settings


def turn_credential(*, secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def ice_servers_for(*, user_id, now: float | None = None) -> dict:
    ttl = settings.TURN_TTL
    servers = []
    if settings.STUN_URLS:
        servers.append({"urls": list(settings.STUN_URLS)})
    if settings.TURN_URLS and settings.TURN_SECRET:
        username = f"{int((now or time.time()) + ttl)}:{user_id}"
        servers.append(
            {
                "urls": list(settings.TURN_URLS),
                "username": username,
                "credential": turn_credential(secret=settings.TURN_SECRET[0], username=username),
            }
        )
    return {"ice_servers": servers, "ttl": ttl}
