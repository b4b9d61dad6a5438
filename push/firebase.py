"""Firebase Cloud Messaging through firebase-admin: the only module that imports the SDK.

Messages address devices by ``fid`` (firebase-admin 7.7 deprecates ``Message.token`` in its
favour); the value is whatever identifier the app registered at POST /v1/devices.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import timedelta

import firebase_admin
import google.auth
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from firebase_admin import exceptions, messaging
from google.auth.credentials import Credentials
from google.auth.exceptions import DefaultCredentialsError

from push.notifications import PushNotification
from push.providers import DeliveryOutcome, PushProvider
from push.selectors import PushTarget

logger = logging.getLogger(__name__)

FCM_SCOPES = ["https://www.googleapis.com/auth/firebase.messaging"]
# The SDK waits 120 s by default; a ringing push that late is useless, and retries are ours.
HTTP_TIMEOUT_SECONDS = 10
MAX_BATCH = 500  # messaging.send_each takes at most 500 messages
CREDENTIAL_VARIABLES = ("FIREBASE_CREDENTIALS_PATH", "GOOGLE_APPLICATION_CREDENTIALS")
TRANSIENT_ERRORS = (
    exceptions.ResourceExhaustedError,  # 429, including messaging.QuotaExceededError
    exceptions.InternalError,  # 500
    exceptions.UnavailableError,  # 503, and connection failures
    exceptions.DeadlineExceededError,  # 504, and timeouts
)
TOKEN_FIELDS = ("message.fid", "message.token")


def load_credentials() -> tuple[Credentials, str | None, str]:
    """The credentials named by FIREBASE_CREDENTIALS_PATH, else GOOGLE_APPLICATION_CREDENTIALS.

    Returns ``(credentials, project id in the file or None, variable used)``; raises
    ImproperlyConfigured, naming the variable, when neither is set or the file is unusable.
    """
    for variable in CREDENTIAL_VARIABLES:
        path = getattr(settings, variable, "")
        if path:
            break
    else:
        raise ImproperlyConfigured(
            "PUSH_PROVIDER=firebase needs credentials: set FIREBASE_CREDENTIALS_PATH "
            "(or GOOGLE_APPLICATION_CREDENTIALS) to a service account JSON file"
        )
    try:
        credentials, project_id = google.auth.load_credentials_from_file(path, scopes=FCM_SCOPES)
    except (OSError, ValueError, DefaultCredentialsError) as exc:
        reason = " ".join(str(exc).split())  # one line
        raise ImproperlyConfigured(
            f"{variable} points at {path!r}, which is not usable credentials: {reason}"
        ) from None
    return credentials, project_id, variable


class FirebaseProvider(PushProvider):
    """Sends FCM data messages with high priority through the SDK's ``messaging.send_each``."""

    name = "firebase"

    def __init__(self, *, project_id: str, credentials: Credentials, http_timeout: float = HTTP_TIMEOUT_SECONDS):
        self.project_id = project_id
        # A named app of our own, so nothing else initializing the default app can clash.
        self._app = firebase_admin.initialize_app(
            credentials,
            {"projectId": project_id, "httpTimeout": http_timeout},
            name=f"secureconnect-push-{uuid.uuid4().hex[:12]}",
        )

    @classmethod
    def from_settings(cls) -> FirebaseProvider:
        credentials, file_project_id, variable = load_credentials()
        project_id = settings.FIREBASE_PROJECT_ID or file_project_id
        if not project_id:
            raise ImproperlyConfigured(f"FIREBASE_PROJECT_ID must be set ({variable} names no project)")
        return cls(project_id=project_id, credentials=credentials)

    def send(self, notification: PushNotification, targets: Sequence[PushTarget]) -> list[DeliveryOutcome]:
        outcomes: list[DeliveryOutcome] = []
        for start in range(0, len(targets), MAX_BATCH):
            batch = targets[start : start + MAX_BATCH]
            messages = [encode(notification, target) for target in batch]
            response = messaging.send_each(messages, app=self._app)
            outcomes += [
                outcome_of(result.exception, notification, target)
                for result, target in zip(response.responses, batch, strict=True)
            ]
        return outcomes

    def close(self) -> None:
        firebase_admin.delete_app(self._app)


def encode(notification: PushNotification, target: PushTarget) -> messaging.Message:
    """The FCM message for one device: data only, high priority, with each platform's options."""
    ttl = notification.ttl_seconds
    webpush_headers = {"Urgency": "high"}
    if ttl is not None:
        webpush_headers["TTL"] = str(ttl)
    return messaging.Message(
        fid=target.token,
        data=notification.data,
        android=messaging.AndroidConfig(priority="high", ttl=ttl),
        apns=_apns_config(notification),
        webpush=messaging.WebpushConfig(headers=webpush_headers),
    )


def _apns_config(notification: PushNotification) -> messaging.APNSConfig:
    if notification.alert is not None:
        # A VoIP-style alert: shown at once, with the category's answer/decline actions; a
        # later alert for the same call (missed_call) replaces it through the collapse id.
        headers = {"apns-push-type": "alert", "apns-priority": "10", "apns-collapse-id": notification.call_id}
        aps = messaging.Aps(
            alert=messaging.ApsAlert(title=notification.alert.title, body=notification.alert.body),
            sound="default",
            category=notification.alert.category,
            thread_id=notification.call_id,
        )
    else:
        # Silent: wakes the app to update its state; Apple requires priority 5 for these.
        headers = {"apns-push-type": "background", "apns-priority": "5"}
        aps = messaging.Aps(content_available=True)
    expires_at = notification.expires_at
    if expires_at is None and notification.ttl_seconds is not None:
        expires_at = timezone.now() + timedelta(seconds=notification.ttl_seconds)
    if expires_at is not None:
        headers["apns-expiration"] = str(int(expires_at.timestamp()))
    return messaging.APNSConfig(headers=headers, payload=messaging.APNSPayload(aps=aps))


def outcome_of(
    error: exceptions.FirebaseError | None, notification: PushNotification, target: PushTarget
) -> DeliveryOutcome:
    if error is None:
        return DeliveryOutcome.SENT
    if isinstance(error, messaging.UnregisteredError) or _names_the_token(error):
        logger.info(
            "FCM reports %s device %s… of user %s dead: %s", target.platform, target.token[:8], target.user_id, error
        )
        return DeliveryOutcome.DEAD
    if _is_transient(error):
        return DeliveryOutcome.RETRY
    logger.error(
        "FCM refused %s for %s device %s… of user %s: %s (%s)",
        notification.kind,
        target.platform,
        target.token[:8],
        target.user_id,
        error,
        error.code,
    )
    return DeliveryOutcome.FAILED


def _is_transient(error: exceptions.FirebaseError) -> bool:
    if isinstance(error, TRANSIENT_ERRORS):
        return True
    status = getattr(error.http_response, "status_code", None)
    return status is not None and (status == 429 or status >= 500)


def _names_the_token(error: exceptions.FirebaseError) -> bool:
    """An INVALID_ARGUMENT about the device identifier, not about the rest of the message
    (a bad payload must not deactivate every device)."""
    if not isinstance(error, exceptions.InvalidArgumentError) or error.http_response is None:
        return False
    try:
        body = error.http_response.json().get("error", {})
    except ValueError:
        return False
    for detail in body.get("details") or []:
        for violation in detail.get("fieldViolations") or []:
            if violation.get("field") in TOKEN_FIELDS:
                return True
    return "registration token" in str(body.get("message", "")).lower()
