"""The throttle base of the API, kept in the Django cache (Redis when ``REDIS_URL`` is set).

Rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` (the ``THROTTLE_*`` variables).
``UserThrottle`` is the default of every view; a view that sets its own ``throttle_classes``
replaces it. The apps' own throttles build on these: ``calls.api.throttles`` (call initiation),
``accounts.throttles`` (login, registration, token refresh, user lookup).
"""

from __future__ import annotations

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
