"""Helpers of the outage tests: start a call, recover as the supervisor does, look at the
database behind the proxy's back."""

from __future__ import annotations

import psycopg2
from django.db import connection

from calls import services
from calls.background_threads import make_supervisor


def initiate(caller, callee, conversation):
    return services.call_initiate(
        caller_id=caller.id, conversation_id=conversation.id, callee_ids=[callee.id], call_type="video"
    )


def recover():
    """What the supervisor does once a probe connects: replay, then close the breaker."""
    assert make_supervisor()._drain_and_close()


def rows_behind_the_proxy(proxy, call_id) -> tuple[str | None, dict[str, str]]:
    """The call's status and its participants' states as PostgreSQL holds them, read on a
    connection of its own straight to the server (not through the proxy, which may be down)."""
    params = {k: v for k, v in connection.get_connection_params().items() if k not in ("cursor_factory", "context")}
    params.update(host=proxy.target[0], port=proxy.target[1])
    direct = psycopg2.connect(**params)
    try:
        with direct.cursor() as cursor:
            cursor.execute("SELECT status FROM calls_call WHERE id = %s", [str(call_id)])
            row = cursor.fetchone()
            cursor.execute("SELECT user_id, state FROM calls_callparticipant WHERE call_id = %s", [str(call_id)])
            participants = {str(user_id): state for user_id, state in cursor.fetchall()}
    finally:
        direct.close()
    return (row[0] if row else None), participants
