"""A call and its participants as a plain dict (for the spool and the snapshot cache) and back.

Values go through each field's own ``value_to_string`` / ``to_python``, so timestamps keep
their microseconds and ids stay UUIDs.
"""

from __future__ import annotations

from calls.models import Call, CallParticipant


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


def encode_call(call: Call, participants: list[CallParticipant]) -> dict:
    return {"call": _encode(call), "participants": [_encode(p) for p in participants]}


def decode_call(payload: dict) -> tuple[Call, list[CallParticipant]]:
    call = _decode(Call, payload["call"])
    participants = [_decode(CallParticipant, p) for p in payload["participants"]]
    for participant in participants:
        participant._state.adding = False
    call._state.adding = False
    return call, participants
