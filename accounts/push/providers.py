"""Who delivers a push: the provider interface, the log and none providers, and the choice.

The rest of the project sends through ``accounts.push.delivery.push_send``; only
``accounts.push.firebase`` imports the Firebase SDK.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from accounts.push.notifications import PushNotification
from accounts.push.selectors import PushTarget

logger = logging.getLogger(__name__)


class Outcome(enum.Enum):
    SENT = "sent"
    RETRY = "retry"  # transient (FCM 429 or 5xx, network): worth another try
    DEAD = "dead"  # the token is unregistered or invalid: stop using it
    FAILED = "failed"  # anything else: trying again would not help


class PushProvider:
    """Delivers one notification to some devices.

    ``send`` returns one Outcome per target, in order, and raises only for a bug.
    """

    name = "base"
    enabled = True

    def send(self, notification: PushNotification, targets: Sequence[PushTarget]) -> list[Outcome]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the provider holds (the SDK app); sends after this are a bug."""


class LogProvider(PushProvider):
    """Development: log each push it would send instead of sending it."""

    name = "log"

    def send(self, notification, targets):
        for target in targets:
            logger.info(
                "Push (log provider) %s to %s device %s… of user %s: %s",
                notification.kind,
                target.platform,
                target.token[:8],
                target.user_id,
                notification.data,
            )
        return [Outcome.SENT] * len(targets)


class NullProvider(PushProvider):
    """Push notifications switched off."""

    name = "none"
    enabled = False

    def send(self, notification, targets):
        return [Outcome.SENT] * len(targets)


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
    from accounts.push.firebase import FirebaseProvider

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
