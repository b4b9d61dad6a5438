"""Which push provider is in use: the one ``PUSH_PROVIDER`` asks for, built at start-up
(``push.listener.push_start``), or one a test installs. Imports ``push.firebase`` only when
Firebase is chosen; neither provider module imports this one.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from push.providers import LogProvider, NullProvider, PushProvider

logger = logging.getLogger(__name__)


def build_provider() -> PushProvider:
    """The provider settings.PUSH_PROVIDER asks for.

    Firebase with missing or unreadable credentials raises ImproperlyConfigured in production
    (start-up stops with one line); in development it falls back to the log provider.
    """
    if settings.PUSH_PROVIDER == "none":
        if settings.IS_PRODUCTION:
            logger.warning("PUSH_PROVIDER is none: callees whose app is in the background will not ring")
        return NullProvider()
    if settings.PUSH_PROVIDER == "log":
        return LogProvider()
    from push.firebase import FirebaseProvider

    try:
        provider = FirebaseProvider.from_settings()
    except ImproperlyConfigured as exc:
        if settings.IS_PRODUCTION:
            raise
        logger.warning("%s; push notifications fall back to the log provider (development only)", exc)
        return LogProvider()
    logger.info("Using Firebase Provider for project: %s", provider.project_id)
    return provider


_provider: PushProvider | None = None


def get_provider() -> PushProvider:
    """The provider in use (built from settings on first use if start-up did not build one)."""
    global _provider
    if _provider is None:
        _provider = build_provider()
    return _provider


def install_provider(provider: PushProvider | None) -> PushProvider | None:
    """Use ``provider`` from now on (None: build from settings on next use); returns the previous one."""
    global _provider
    previous, _provider = _provider, provider
    return previous
