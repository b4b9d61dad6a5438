"""The throttle base of the API, kept in the Django cache (Redis when ``REDIS_URL`` is set).

Rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` (the ``THROTTLE_*`` variables).
``UserThrottle`` is the default of every view; a view that sets its own ``throttle_classes``
replaces it. The apps' own throttles build on these: ``calls.api.throttles`` (call initiation),
``accounts.throttles`` (login, registration, token refresh, user lookup).
"""

from __future__ import annotations

from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from core.cache import RedisCache


class ConfiguredRateThrottle(SimpleRateThrottle):
    """Reads its rate from the settings in force (DRF binds them once, at import), so that
    ``override_settings(REST_FRAMEWORK=...)`` takes effect.

    With the Redis cache a request is counted in one atomic round trip
    (``core.cache.RedisCache.sliding_window_hit``); DRF's own way, kept for the per-process
    cache, reads the history and writes it back: two round trips, and concurrent requests can
    all read the same history and all pass. Same window, same limit, same ``Retry-After``."""

    _window: tuple[int, float | None] | None = None  # (hits in the window, oldest hit) from Redis

    def get_rate(self):
        try:
            return api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        except KeyError:
            raise ImproperlyConfigured(f"No throttle rate for scope {self.scope!r}") from None

    @staticmethod
    def atomic_windows() -> RedisCache | None:
        """The cache when it counts windows atomically (Redis), else None (DRF's way)."""
        store = caches["default"]
        return store if isinstance(store, RedisCache) else None

    def allow_request(self, request, view):
        store = self.atomic_windows()
        if store is None:
            return super().allow_request(request, view)
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        allowed, count, oldest = store.sliding_window_hit(
            self.key, now=self.now, window=self.duration, limit=self.num_requests
        )
        self._window = (count, oldest)
        return allowed

    def wait(self):
        if self._window is None:
            return super().wait()
        count, oldest = self._window  # as DRF computes it from its history
        remaining = self.duration - (self.now - oldest) if oldest is not None else self.duration
        available = self.num_requests - count + 1
        return remaining / available if available > 0 else None


class UserThrottle(ConfiguredRateThrottle):
    """Per authenticated user (scope ``user``); anonymous requests are not counted here."""

    scope = "user"

    def get_cache_key(self, request, view):
        if not request.user or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}
