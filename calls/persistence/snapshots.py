"""A call, its participants and its timeline as a plain dict (for the spool and the snapshot cache) and back.

Values go through each field's own ``value_to_string`` / ``to_python``, so timestamps keep
their microseconds and ids stay UUIDs.
"""

from __future__ import annotations

from calls.models import Call, CallParticipant, CallTimelineEvent


def _fields(model):
    return list(model._meta.concrete_fields)


def _encode(obj) -> dict:
    data = {}
    for field in _fields(type(obj)):
        value = getattr(obj, field.attname)
        data[field.attname] = None if value is None else field.value_to_string(obj)
    return data


def _decode(model, data: dict):
    values = {}
    for field in _fields(model):
        if field.attname in data:
            raw = data[field.attname]
            values[field.attname] = None if raw is None else field.to_python(raw)
    return model(**values)


def encode_call(call: Call, participants: list[CallParticipant], timeline=()) -> dict:
    return {
        "call": _encode(call),
        "participants": [_encode(p) for p in participants],
        "timeline": [_encode(e) for e in timeline],
    }


def decode_call(payload: dict) -> tuple[Call, list[CallParticipant], list[CallTimelineEvent]]:
    """The call, its participants and its timeline (empty for a state journaled before calls
    had one)."""
    call = _decode(Call, payload["call"])
    participants = [_decode(CallParticipant, p) for p in payload["participants"]]
    timeline = [_decode(CallTimelineEvent, e) for e in payload.get("timeline", ())]
    for obj in (*participants, *timeline):
        obj._state.adding = False
    call._state.adding = False
    return call, participants, timeline
