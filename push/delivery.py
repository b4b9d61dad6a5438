"""Send a notification to every active device of some users: the one interface the rest of
the project uses, whichever provider is configured.

Transient failures (FCM 429 and 5xx, network errors) are retried with exponential backoff
and jitter, PUSH_RETRY_ATTEMPTS tries in all, only for the devices that failed, and never
after the notification has expired. Tokens FCM reports dead are deactivated at once.
Runs on a push worker thread (``push.worker``), never on a request.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import backoff
from django.conf import settings

from push.notifications import PushNotification
from push.provider_choice import get_provider
from push.providers import DeliveryOutcome, PushProvider
from push.selectors import PushTarget, device_targets_for_users
from push.services import device_deactivate

logger = logging.getLogger(__name__)


@dataclass
class PushReport:
    """What happened to one notification: tokens by final outcome, and how many tries it took."""

    sent: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    attempts: int = 0


def push_send(
    *, user_ids: Iterable[str], notification: PushNotification, provider: PushProvider | None = None
) -> PushReport:
    """Deliver ``notification`` to every active device of every user in ``user_ids``.

    Blocks for the retries, so call it from a push worker thread. Reads and updates devices.
    """
    provider = provider or get_provider()
    report = PushReport()
    if not provider.enabled:
        return report
    targets = device_targets_for_users(user_ids=user_ids)
    if not targets:
        return report
    if notification.is_expired():
        logger.info("Push %s for call %s expired before it could be sent", notification.kind, notification.call_id)
        report.failed = [t.token for t in targets]
        return report

    pending: list[PushTarget] = targets

    def attempt() -> list[PushTarget]:
        nonlocal pending
        if report.attempts and notification.is_expired():
            return []  # too late to be useful: stop retrying
        report.attempts += 1
        outcomes = provider.send(notification, pending)
        retry, dead = [], []
        for target, outcome in zip(pending, outcomes, strict=True):
            if outcome is DeliveryOutcome.SENT:
                report.sent.append(target.token)
            elif outcome is DeliveryOutcome.DEAD:
                dead.append(target.token)
            elif outcome is DeliveryOutcome.RETRY:
                retry.append(target)
            else:
                report.failed.append(target.token)
        if dead:
            device_deactivate(tokens=dead)
            report.dead += dead
        pending = retry
        return retry

    _with_retries(attempt)()
    if pending:
        logger.warning(
            "Push %s for call %s gave up on %d device(s) after %d tries",
            notification.kind,
            notification.call_id,
            len(pending),
            report.attempts,
        )
        report.failed += [t.token for t in pending]
    return report


def _with_retries(attempt):
    # Built per call so the settings are read at run time (tests shorten the delays).
    return backoff.on_predicate(
        backoff.expo,
        predicate=bool,  # a non-empty list of devices to retry
        max_tries=settings.PUSH_RETRY_ATTEMPTS,
        factor=settings.PUSH_RETRY_BASE_DELAY,
        max_value=settings.PUSH_RETRY_MAX_DELAY,
        jitter=backoff.full_jitter,
        logger=None,
    )(attempt)
