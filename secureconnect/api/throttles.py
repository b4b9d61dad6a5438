"""Rate limits of the API, kept in the Django cache (Redis when ``REDIS_URL`` is set).

Rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` (the ``THROTTLE_*`` variables).
``UserThrottle`` is the default of every view; a view that sets its own ``throttle_classes``
replaces it: call initiation uses ``CallInitiateThrottle``, login and registration (anonymous)
use the address and account throttles below.
"""

from __future__ import annotations

import hashlib

from django.core.exceptions import ImproperlyConfigured
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


class ConfiguredRateThrottle(SimpleRateThrottle):
    """Reads its rate from the settings in force (DRF binds them once, at import), so that
    ``override_settings(REST_FRAMEWORK=...)`` takes effect."""

    def get_rate(self):
        try:
            return api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        except KeyError:
            raise ImproperlyConfigured(f"No throttle rate for scope {self.scope!r}") from None


class UserThrottle(ConfiguredRateThrottle):
    """Per authenticated user (scope ``user``); anonymous requests are not counted here."""

    scope = "user"

    def get_cache_key(self, request, view):
        if not request.user or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class CallInitiateThrottle(UserThrottle):
    """Per caller, for ``POST`` that starts a call (scope ``call_initiate``)."""

    scope = "call_initiate"


class UserLookupThrottle(UserThrottle):
    """Per user, for finding people by email or username (scope ``user_lookup``): slows enumeration."""

    scope = "user_lookup"


class RegisterThrottle(ConfiguredRateThrottle):
    """Per client address (scope ``register``); every attempt counts."""

    scope = "register"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginFailureThrottle(ConfiguredRateThrottle):
    """Counts failed logins only (scope ``login``), so people behind one address who type their
    password right are never locked out; once the limit is reached every attempt, right or
    wrong, is refused until the window has passed.

    ``allow_request`` only reads the history; the login view calls ``record_failure`` after a
    wrong password (see ``record_login_failure``).
    """

    scope = "login"

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        self.history = self._recent_history()
        if len(self.history) >= self.num_requests:
            return self.throttle_failure()
        return True

    def record_failure(self, request, view) -> None:
        if self.rate is None:
            return
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return
        self.now = self.timer()
        self.history = [self.now, *self._recent_history()]
        self.cache.set(self.key, self.history, self.duration)

    def _recent_history(self) -> list[float]:
        return [at for at in self.cache.get(self.key, []) if at > self.now - self.duration]


class LoginAddressThrottle(LoginFailureThrottle):
    """Failed logins per client address."""

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": "login_address", "ident": self.get_ident(request)}


class LoginAccountThrottle(LoginFailureThrottle):
    """Failed logins per account (the email in the body, case-insensitive, hashed for the key)."""

    def get_cache_key(self, request, view):
        email = request.data.get("email") if isinstance(request.data, dict) else None
        if not isinstance(email, str) or not email.strip():
            return None
        ident = hashlib.sha256(email.strip().lower().encode()).hexdigest()
        return self.cache_format % {"scope": "login_account", "ident": ident}


def record_login_failure(request, view) -> None:
    """Count a failed login against every failure throttle of ``view``."""
    for throttle in view.get_throttles():
        if isinstance(throttle, LoginFailureThrottle):
            throttle.record_failure(request, view)
