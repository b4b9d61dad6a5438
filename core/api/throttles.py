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

from core.cache import RateWindow, RedisCache

# Where ``admit_user_request`` leaves a request's hits, {window key: (when, hit)}, for the
# throttles of ``check_throttles`` to take instead of counting again.
_COUNTED = "_secureconnect_rate_hits"


class ConfiguredRateThrottle(SimpleRateThrottle):
    """Reads its rate from the settings in force (DRF binds them once, at import), so that
    ``override_settings(REST_FRAMEWORK=...)`` takes effect.

    With the Redis cache a request is counted in one atomic round trip
    (``core.cache.RedisCache.sliding_window_hit``); DRF's own way, kept for the per-process
    cache, reads the history and writes it back: two round trips, and concurrent requests can
    all read the same history and all pass. Same window, same limit, same ``Retry-After``.

    The per-user ones (``UserThrottle``) are counted while the bearer token is checked, in the
    same round trip (``admit_user_request``), and take that count here."""

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
        counted = getattr(request, _COUNTED, {}).pop(self.key, None)
        if counted is not None:
            self.now, hit = counted
        else:
            self.now = self.timer()
            hit = store.sliding_window_hit(self.key, now=self.now, window=self.duration, limit=self.num_requests)
        self._window = (hit.count, hit.oldest)
        return hit.allowed

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
        return self.key_for(request.user.pk)

    def key_for(self, user_id) -> str:
        return self.cache_format % {"scope": self.scope, "ident": user_id}


def admit_user_request(request, *, user_id, marks: list[str]) -> set[str] | None:
    """Check the cache keys ``marks`` (each refuses the request: ``accounts.tokens``) and count
    the request against its view's per-user rate limits, in one round trip
    (``core.cache.RedisCache.admit``): the marks found, and then nothing was counted. The hits
    wait on ``request`` for the view's ``check_throttles``, which then sends nothing.

    None without Redis: the caller reads the marks, and each rate limit counts itself."""
    store = ConfiguredRateThrottle.atomic_windows()
    if store is None:
        return None
    view = (getattr(request, "parser_context", None) or {}).get("view")
    throttles = [t for t in (view.get_throttles() if view is not None else []) if isinstance(t, UserThrottle)]
    windows = {}
    for throttle in throttles:
        if throttle.rate is not None:
            key = throttle.key_for(user_id)
            windows[key] = RateWindow(key, throttle.duration, throttle.num_requests)
    now = throttles[0].timer() if throttles else 0.0
    found, hits = store.admit(marks, list(windows.values()), now=now)
    setattr(request, _COUNTED, {key: (now, hit) for key, hit in zip(windows, hits, strict=False)})
    return found
