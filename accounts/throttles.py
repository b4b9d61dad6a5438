"""Rate limits of the accounts API and the admin log-in (the base is ``core.api.throttles``).

Login and registration (anonymous) use the address and account throttles below, token refresh
``RefreshThrottle``, finding people ``UserLookupThrottle``.
"""

from __future__ import annotations

from accounts.emails import email_key
from core.api.throttles import ConfiguredRateThrottle, UserThrottle


class UserLookupThrottle(UserThrottle):
    """Per user, for finding people by email or username (scope ``user_lookup``): slows enumeration."""

    scope = "user_lookup"


class RegisterThrottle(ConfiguredRateThrottle):
    """Per client address (scope ``register``); every attempt counts."""

    scope = "register"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class RefreshThrottle(RegisterThrottle):
    """Token refreshes per client address (scope ``refresh``); every attempt counts."""

    scope = "refresh"


class LoginFailureThrottle(ConfiguredRateThrottle):
    """Counts failed logins only, so people who type their password right are never locked out
    by someone else's failures; once a limit is reached every attempt that the limit covers,
    right or wrong, is refused until the window has passed.

    ``allow_request`` only reads the history; the login view calls ``record_failure`` after a
    wrong password (see ``record_login_failure``). Each subclass keys the count differently
    (``key_for``); the account is always the canonical email (``accounts.emails``), hashed.
    The API reads the email from the JSON body, the admin login from its form
    (``login_allowed`` / ``record_login_failure`` with an explicit ``email``).
    """

    scope = "login"

    def key_for(self, *, email: str | None, address: str) -> str | None:
        raise NotImplementedError

    def get_cache_key(self, request, view, email=None):
        if email is None:
            email = _email_in_body(request)
        return self.key_for(email=email, address=self.get_ident(request))

    def allow_request(self, request, view, email=None):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view, email)
        if self.key is None:
            return True
        self.now = self.timer()
        store = self.atomic_windows()
        if store is not None:
            count, oldest = store.window_count(self.key, now=self.now, window=self.duration)
            self._window = (count, oldest)
            return count < self.num_requests
        self.history = self._recent_history()
        if len(self.history) >= self.num_requests:
            return self.throttle_failure()
        return True

    def record_failure(self, request, view, email=None) -> None:
        if self.rate is None:
            return
        self.key = self.get_cache_key(request, view, email)
        if self.key is None:
            return
        self.now = self.timer()
        store = self.atomic_windows()
        if store is not None:  # atomic: concurrent failures are each counted
            store.window_add(self.key, now=self.now, window=self.duration)
            return
        self.history = [self.now, *self._recent_history()]
        self.cache.set(self.key, self.history, self.duration)

    def _recent_history(self) -> list[float]:
        return [at for at in self.cache.get(self.key, []) if at > self.now - self.duration]


class LoginAccountAddressThrottle(LoginFailureThrottle):
    """Failed logins per (account, client address), at ``THROTTLE_LOGIN``."""

    def key_for(self, *, email, address):
        if not email:
            return None
        return self.cache_format % {"scope": "login_account_address", "ident": f"{email_key(email)}:{address}"}


class LoginAddressThrottle(LoginFailureThrottle):
    """Failed logins per client address, whatever the account, at ``THROTTLE_LOGIN``."""

    def key_for(self, *, email, address):
        return self.cache_format % {"scope": "login_address", "ident": address}


class LoginAccountThrottle(LoginFailureThrottle):
    """Failed logins per account from every address together, at ``THROTTLE_LOGIN_ACCOUNT``
    (higher, so that an attacker elsewhere does not lock the owner out, yet brute force from
    many addresses stays slow)."""

    scope = "login_account"

    def key_for(self, *, email, address):
        if not email:
            return None
        return self.cache_format % {"scope": "login_account", "ident": email_key(email)}


LOGIN_THROTTLES = (LoginAccountAddressThrottle, LoginAddressThrottle, LoginAccountThrottle)


def _email_in_body(request) -> str | None:
    data = getattr(request, "data", None)
    email = data.get("email") if isinstance(data, dict) else None
    return email if isinstance(email, str) and email.strip() else None


def login_allowed(request, *, email: str | None) -> float | None:
    """For logins outside DRF (the admin): ``None`` when ``email`` may try to log in from this
    request's address, else the seconds to wait."""
    waits = []
    for throttle_class in LOGIN_THROTTLES:
        throttle = throttle_class()
        if not throttle.allow_request(request, None, email or ""):
            waits.append(throttle.wait() or 1)
    return max(waits) if waits else None


def record_login_failure(request, view=None, *, email: str | None = None) -> None:
    """Count a failed login against every login throttle (those of ``view`` when given)."""
    throttles = view.get_throttles() if view is not None else [cls() for cls in LOGIN_THROTTLES]
    for throttle in throttles:
        if isinstance(throttle, LoginFailureThrottle):
            throttle.record_failure(request, view, email)
