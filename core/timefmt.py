"""The one way the service writes a moment: ISO 8601 in UTC with a ``Z`` (RFC 3339)."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_z(value: datetime, *, timespec: str = "auto") -> str:
    """``2026-01-02T03:04:05.678Z``: ``value`` (aware) in UTC; ``timespec`` as ``datetime.isoformat``."""
    return value.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
