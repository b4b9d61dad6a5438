"""Rate limits of the calls API (the base is ``core.api.throttles``)."""

from __future__ import annotations

from core.api.throttles import UserThrottle


class CallInitiateThrottle(UserThrottle):
    """Per caller, for ``POST`` that starts a call (scope ``call_initiate``)."""

    scope = "call_initiate"
