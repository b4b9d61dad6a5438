"""May this user see or act on this call: the one rule, for REST, services and signaling.

A stranger (someone who is not a participant) and a call that does not exist get the same
answer, ``CallNotFound``, wherever they ask (the API's 404, the socket's 4404), so call ids
cannot be probed. Reads only: a ringing call past its deadline is expired by the service layer
(``services.call_expire_if_overdue``), never here.
"""

from __future__ import annotations

from calls import lifecycle
from calls.exceptions import CallNotFound, InvalidTransition
from calls.persistence import routing
from calls.persistence.sources import CallRecord


def require_participant(record: CallRecord | None, user_id) -> CallRecord:
    """``record`` when ``user_id`` takes part in it; CallNotFound for a stranger or no call."""
    if record is None or not any(str(p.user_id) == str(user_id) for p in record.participants):
        raise CallNotFound()
    return record


def require_live(record: CallRecord) -> CallRecord:
    """``record`` when the call is ringing or active; InvalidTransition once it is over."""
    if record.call.status not in lifecycle.LIVE_STATUSES:
        raise InvalidTransition("The call has already ended.")
    return record


def call_access(*, call_id, user_id, with_timeline: bool = False) -> tuple[CallRecord, bool]:
    """The call for one of its participants, and whether it came from the journal (the
    database is away). CallNotFound for strangers and unknown calls."""
    record, deferred = routing.read_call(call_id, with_timeline=with_timeline)
    return require_participant(record, user_id), deferred
