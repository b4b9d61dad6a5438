"""May this user signal in this call, now? Read from the database, or from the spool while
persistence is limited (``calls.access.call_access``)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import DatabaseError

from calls import lifecycle
from calls.access import call_access, require_live
from calls.exceptions import PersistenceUnavailable
from calls.models import CallParticipant
from calls.services import call_expire_if_overdue
from signaling.protocol import FORBIDDEN, Refused

# A signaling socket may exist only while its participant is in one of these states.
SIGNALING_STATES = frozenset({CallParticipant.State.RINGING, CallParticipant.State.JOINED})


@dataclass(frozen=True)
class Participation:
    call_id: str
    user_id: str
    participant_ids: tuple[str, ...]  # caller and every invited callee
    state: str  # this user's, at the check


def participation_check(*, call_id, user_id) -> Participation:
    """The call's participants when ``user_id`` is one of them, ringing or joined, and the call
    is ringing or active. Raises CallNotFound (strangers too), Refused 4403 (declined, left,
    missed), InvalidTransition (the call is over) or PersistenceUnavailable (the database is
    away and the call is not known locally).

    A stranger gets CallNotFound, as on the REST API (``calls.access``)."""
    try:
        record, deferred = call_access(call_id=call_id, user_id=user_id)
    except DatabaseError as exc:  # a permanent database error: still a clear refusal, not a crash
        raise PersistenceUnavailable() from exc
    participant_ids = tuple(str(p.user_id) for p in record.participants)
    record, _ = call_expire_if_overdue(record, deferred=deferred)
    require_live(record)
    participant = lifecycle.participant_for(record.participants, user_id)
    if participant.state not in SIGNALING_STATES:
        raise Refused(FORBIDDEN, f"You can no longer signal in this call (you {participant.state}).")
    return Participation(
        call_id=str(call_id), user_id=str(user_id), participant_ids=participant_ids, state=participant.state
    )
