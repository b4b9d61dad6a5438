"""Who delivers a push: the provider interface and the log and none providers.

The rest of the project sends through ``push.delivery.push_send``; only ``push.firebase``
imports the Firebase SDK. Which provider is in use is ``push.provider_choice``'s.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence

from push.notifications import PushNotification
from push.selectors import PushTarget

logger = logging.getLogger(__name__)


class DeliveryOutcome(enum.Enum):
    SENT = "sent"
    RETRY = "retry"  # transient (FCM 429 or 5xx, network): worth another try
    DEAD = "dead"  # the token is unregistered or invalid: stop using it
    FAILED = "failed"  # anything else: trying again would not help


class PushProvider:
    """Delivers one notification to some devices.

    ``send`` returns one DeliveryOutcome per target, in order, and raises only for a bug.
    """

    name = "base"
    enabled = True

    def send(self, notification: PushNotification, targets: Sequence[PushTarget]) -> list[DeliveryOutcome]:
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
        return [DeliveryOutcome.SENT] * len(targets)


class NullProvider(PushProvider):
    """Push notifications switched off."""

    name = "none"
    enabled = False

    def send(self, notification, targets):
        return [DeliveryOutcome.SENT] * len(targets)
