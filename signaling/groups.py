"""Channel-layer group names: built here and nowhere else."""

from __future__ import annotations


def group_name(*, call_id=None, user_id=None) -> str:
    """``call.<id>``: every signaling socket of a call. ``call.<id>.user.<id>``: one participant's
    signaling sockets in that call. ``user.<id>``: a user's events sockets.

    Ids are UUIDs, so names stay within the layer's rules (ASCII letters, digits, ``-._``,
    under 100 characters)."""
    if call_id is None and user_id is None:
        raise ValueError("A group is named after a call, a user, or both.")
    parts = []
    if call_id is not None:
        parts.append(f"call.{call_id}")
    if user_id is not None:
        parts.append(f"user.{user_id}")
    return ".".join(parts)
