"""What each push says: FCM data messages built from a call event's call dict.

Every value in ``data`` is a string (FCM data messages carry strings only). Times are
ISO 8601 in UTC with a ``Z``, like the REST API. ``timestamp`` is when the push was built;
``expires_at`` on incoming_call is when the ringing stops, so the app ignores a late push.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from core.timefmt import iso_z


class PushKind:
    INCOMING_CALL = "incoming_call"  # ring: a call is waiting for this user
    CALL_CANCELLED = "call_cancelled"  # stop ringing (see CancelReason)
    MISSED_CALL = "missed_call"  # the ringing timed out: show a missed call
    CALL_ENDED = "call_ended"  # the call the user was part of is over


class CancelReason:
    ANSWERED_ELSEWHERE = "answered_elsewhere"  # the user (or, in a 1:1 call, the callee) answered on another device
    DECLINED = "declined"  # the user declined on another device
    CANCELLED = "cancelled"  # the caller gave up
    MISSED = "missed"  # nobody answered in time


@dataclass(frozen=True)
class Alert:
    """The visible alert iOS shows (Android and the web get data only and draw their own UI)."""

    title: str
    body: str
    category: str


@dataclass(frozen=True)
class PushNotification:
    """One push, independent of the provider that delivers it.

    ``expires_at``: after this the push is pointless (not sent, not retried; the ring window).
    ``ttl_seconds``: how long FCM may hold it for an offline device (None: FCM's default).
    ``alert``: None means a silent background push on iOS.
    """

    kind: str
    call_id: str
    data: dict[str, str]
    ttl_seconds: int | None = None
    expires_at: datetime | None = None
    alert: Alert | None = None

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and (now or timezone.now()) >= self.expires_at


def _call_fields(call: dict) -> dict[str, str]:
    return {
        "call_id": str(call["call_id"]),
        "conversation_id": str(call.get("conversation_id") or ""),
        "caller_id": str(call.get("caller_id") or ""),
        "call_type": str(call.get("call_type") or ""),
    }


def _call_label(call: dict) -> str:
    return "video call" if call.get("call_type") == "video" else "audio call"


def incoming_call(
    *, call: dict, caller_name: str, expires_at: datetime, now: datetime | None = None
) -> PushNotification:
    """Ring the callee. FCM keeps it no longer than the ring window lasts."""
    now = now or timezone.now()
    remaining = max(1, math.ceil((expires_at - now).total_seconds()))
    return PushNotification(
        kind=PushKind.INCOMING_CALL,
        call_id=str(call["call_id"]),
        data={
            "type": PushKind.INCOMING_CALL,
            **_call_fields(call),
            "caller_name": caller_name,
            "call_status": "ringing",
            "timestamp": iso_z(now),
            "expires_at": iso_z(expires_at),
        },
        ttl_seconds=remaining,
        expires_at=expires_at,
        alert=Alert(
            title=f"Incoming {_call_label(call)}",
            body=f"{caller_name} is calling",
            category="INCOMING_CALL",
        ),
    )


def call_cancelled(*, call: dict, reason: str, now: datetime | None = None) -> PushNotification:
    """Stop ringing. Useless once the ring window is over, so it lives no longer than one."""
    now = now or timezone.now()
    return PushNotification(
        kind=PushKind.CALL_CANCELLED,
        call_id=str(call["call_id"]),
        data={
            "type": PushKind.CALL_CANCELLED,
            **_call_fields(call),
            "call_status": str(call.get("status") or ""),
            "reason": reason,
            "timestamp": iso_z(now),
        },
        ttl_seconds=settings.CALL_RING_TIMEOUT,
    )


def missed_call(*, call: dict, caller_name: str, now: datetime | None = None) -> PushNotification:
    """Tell a callee whose ringing timed out that they missed the call (a visible alert on iOS)."""
    now = now or timezone.now()
    return PushNotification(
        kind=PushKind.MISSED_CALL,
        call_id=str(call["call_id"]),
        data={
            "type": PushKind.MISSED_CALL,
            **_call_fields(call),
            "caller_name": caller_name,
            "call_status": str(call.get("status") or "missed"),
            "started_at": str(call.get("started_at") or ""),
            "timestamp": iso_z(now),
        },
        alert=Alert(title=f"Missed {_call_label(call)}", body=caller_name, category="MISSED_CALL"),
    )


def call_ended(*, call: dict, ended_by: str | None, now: datetime | None = None) -> PushNotification:
    """The call is over; an app still ringing or showing the call stops."""
    now = now or timezone.now()
    return PushNotification(
        kind=PushKind.CALL_ENDED,
        call_id=str(call["call_id"]),
        data={
            "type": PushKind.CALL_ENDED,
            **_call_fields(call),
            "call_status": str(call.get("status") or ""),
            "end_reason": str(call.get("end_reason") or ""),
            "duration_seconds": str(call.get("duration_seconds") or 0),
            "ended_by": ended_by or "",
            "timestamp": iso_z(now),
        },
    )
