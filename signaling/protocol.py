"""The signaling wire protocol, in one place: what a client may send (one schema, one
validator), what the server sends, and the close codes a socket ends with.

Every frame is a JSON object with a ``type``. Client messages (docs/signaling.md has an
example exchange)::

    {"type": "offer" | "answer" | "ice_candidate" | "join" | "leave" | "mute_audio" | "mute_video" | "ping",
     "target_id"?: "<participant's user id>", "sdp"?: str, "candidate"?: {...}, "muted"?: bool}

The server overwrites ``call_id``, ``sender_id`` and ``timestamp`` on everything it relays.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from accounts.tokens import InvalidToken
from calls.exceptions import CallNotFound, InvalidTransition, NotAParticipant, PersistenceUnavailable
from core.timefmt import iso_z
from signaling.layers import LayerUnavailable

MAX_MESSAGE_BYTES = 64 * 1024


class MessageType:
    OFFER = "offer"
    ANSWER = "answer"
    ICE_CANDIDATE = "ice_candidate"
    JOIN = "join"
    LEAVE = "leave"
    MUTE_AUDIO = "mute_audio"
    MUTE_VIDEO = "mute_video"
    PING = "ping"
    # sent by the server only
    PONG = "pong"
    PARTICIPANTS = "participants"
    CALL_ENDED = "call_ended"
    ERROR = "error"
    PARTICIPANT_RECONNECTING = "participant_reconnecting"  # a joined participant's last socket dropped
    PARTICIPANT_RESUMED = "participant_resumed"  # ... and came back within CALL_RECONNECT_GRACE
    RESUME_INCOMPLETE = "resume_incomplete"  # to the resumed socket: some messages of the gap are lost


@dataclass(frozen=True)
class Field:
    name: str
    kind: type
    expected: str  # for the error message

    def accepts(self, value) -> bool:
        return isinstance(value, self.kind)


SDP = Field("sdp", str, "a string (the session description)")
CANDIDATE = Field("candidate", dict, "an object (the RTCIceCandidateInit)")
MUTED = Field("muted", bool, "true or false")

# The schema: each type a client may send and the fields it needs. Nothing else is accepted.
CLIENT_MESSAGES: dict[str, tuple[Field, ...]] = {
    MessageType.OFFER: (SDP,),
    MessageType.ANSWER: (SDP,),
    MessageType.ICE_CANDIDATE: (CANDIDATE,),
    MessageType.JOIN: (),
    MessageType.LEAVE: (),
    MessageType.MUTE_AUDIO: (MUTED,),
    MessageType.MUTE_VIDEO: (MUTED,),
    MessageType.PING: (),
}
RELAYED_TYPES = frozenset(CLIENT_MESSAGES) - {MessageType.PING}


class ErrorCode:
    INVALID_JSON = "invalid_json"
    INVALID_MESSAGE = "invalid_message"  # valid JSON, but not an object
    UNKNOWN_TYPE = "unknown_type"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    INVALID_TARGET = "invalid_target"
    MESSAGE_TOO_LARGE = "message_too_large"
    BINARY_NOT_SUPPORTED = "binary_not_supported"
    NOT_RECORDED = "not_recorded"  # a mute was relayed but could not be saved on the call


class ProtocolError(Exception):
    """A frame the server will not relay; answered with an error message, the socket stays open."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ClientMessage:
    type: str
    target_id: str | None = None
    fields: dict = field(default_factory=dict)  # the schema's fields for this type, validated


def parse_client_frame(
    *,
    text: str | None,
    binary: bytes | None,
    participant_ids,
    sender_id: str,
    allowed_types=frozenset(CLIENT_MESSAGES),
) -> ClientMessage:
    """Validate one frame against the schema; raises ``ProtocolError`` with the first problem.

    ``participant_ids``: the call's participants (a ``target_id`` must be one of them, and not
    the sender). ``allowed_types``: the types this socket takes (the events socket: ping only)."""
    if text is None:
        raise ProtocolError(ErrorCode.BINARY_NOT_SUPPORTED, "Binary frames are not supported; send JSON text.")
    if len(text) > MAX_MESSAGE_BYTES or len(text.encode("utf-8")) > MAX_MESSAGE_BYTES:
        raise ProtocolError(ErrorCode.MESSAGE_TOO_LARGE, f"Messages are limited to {MAX_MESSAGE_BYTES} bytes.")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError(ErrorCode.INVALID_JSON, "The message is not valid JSON.") from None
    if "\\u" in text:  # an escape may decode to text that cannot be relayed (a lone surrogate)
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except (UnicodeEncodeError, RecursionError):
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE, "The message holds text that is not valid Unicode (a lone surrogate)."
            ) from None
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "A message is a JSON object with a type.")
    if "type" not in data:
        raise ProtocolError(ErrorCode.MISSING_FIELD, "The message has no type.")
    message_type = data["type"]
    if not isinstance(message_type, str) or message_type not in allowed_types:
        known = ", ".join(t for t in CLIENT_MESSAGES if t in allowed_types)
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"Unknown message type; expected one of {known}.")
    fields = {}
    for spec in CLIENT_MESSAGES[message_type]:
        if spec.name not in data or data[spec.name] is None:
            raise ProtocolError(ErrorCode.MISSING_FIELD, f"{message_type} needs {spec.name}.")
        if not spec.accepts(data[spec.name]):
            raise ProtocolError(ErrorCode.INVALID_FIELD, f"{spec.name} must be {spec.expected}.")
        fields[spec.name] = data[spec.name]
    target_id = None
    if message_type in RELAYED_TYPES and data.get("target_id") is not None:
        target_id = _check_target(data["target_id"], participant_ids, sender_id)
    return ClientMessage(message_type, target_id, fields)


def _check_target(value, participant_ids, sender_id: str) -> str:
    try:
        target = str(uuid.UUID(str(value))) if isinstance(value, str) else None
    except ValueError:
        target = None
    if target is None:
        raise ProtocolError(ErrorCode.INVALID_FIELD, "target_id must be a user id (UUID).")
    if target == str(sender_id):
        raise ProtocolError(ErrorCode.INVALID_TARGET, "target_id is yourself; name another participant.")
    if target not in {str(p) for p in participant_ids}:
        raise ProtocolError(ErrorCode.INVALID_TARGET, "target_id is not a participant of this call.")
    return target


def media_change(message: ClientMessage) -> dict:
    """What a mute message records on the call, as ``calls.services.call_set_media`` arguments."""
    if message.type == MessageType.MUTE_AUDIO:
        return {"is_muted": message.fields["muted"]}
    if message.type == MessageType.MUTE_VIDEO:
        return {"is_video_on": not message.fields["muted"]}
    return {}


# --- what the server sends -----------------------------------------------------------------------


def now_timestamp() -> str:
    """RFC 3339, UTC, milliseconds: ``2026-01-31T12:00:00.123Z``."""
    return iso_z(datetime.now(UTC), timespec="milliseconds")


def relayed(message: ClientMessage, *, call_id: str, sender_id: str) -> dict:
    """The message as peers receive it: the server's call_id, sender_id and timestamp, never the client's."""
    out = {"type": message.type, "call_id": str(call_id), "sender_id": str(sender_id)}
    if message.target_id:
        out["target_id"] = message.target_id
    out.update(message.fields)
    out["timestamp"] = now_timestamp()
    return out


def presence_message(message_type: str, *, call_id: str, user_id: str) -> dict:
    """``join``, ``leave``, ``participant_reconnecting`` or ``participant_resumed`` on behalf of a
    participant (named in ``sender_id``)."""
    return relayed(ClientMessage(message_type), call_id=call_id, sender_id=user_id)


def participants_message(*, call_id: str, connected_ids) -> dict:
    return {
        "type": MessageType.PARTICIPANTS,
        "call_id": str(call_id),
        "participants": sorted(str(p) for p in connected_ids),
        "timestamp": now_timestamp(),
    }


def resume_incomplete_message(*, call_id: str, dropped: int) -> dict:
    return {
        "type": MessageType.RESUME_INCOMPLETE,
        "call_id": str(call_id),
        "dropped": dropped,
        "timestamp": now_timestamp(),
    }


def pong_message() -> dict:
    return {"type": MessageType.PONG, "timestamp": now_timestamp()}


def call_ended_message(*, call_id: str, reason: str, status: str) -> dict:
    return {
        "type": MessageType.CALL_ENDED,
        "call_id": str(call_id),
        "reason": reason,
        "status": status,
        "timestamp": now_timestamp(),
    }


def error_message(code: str, message: str, *, close_code: int | None = None) -> dict:
    out = {"type": MessageType.ERROR, "code": code, "message": message}
    if close_code is not None:
        out["close_code"] = close_code
    return out


def call_event_message(*, event_type: str, call: dict, actor_id: str | None, reason: str) -> dict:
    """What an events socket receives (incoming_call, call_accepted, ...)."""
    return {
        "type": event_type,
        "call_id": call.get("call_id"),
        "conversation_id": call.get("conversation_id"),
        "caller_id": call.get("caller_id"),
        "call_type": call.get("call_type"),
        "status": call.get("status"),
        "reason": reason,
        "actor_id": actor_id,
        "call": call,
        "timestamp": now_timestamp(),
    }


def encode(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"))


# --- close codes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Close:
    """How the server ends a socket: a close code, and the error code of the last message."""

    code: int
    error: str


BAD_REQUEST = Close(4400, "bad_request")
UNAUTHENTICATED = Close(4401, "unauthenticated")
FORBIDDEN = Close(4403, "forbidden")
CALL_NOT_FOUND = Close(4404, "call_not_found")
CALL_ALREADY_ENDED = Close(4409, "call_ended")
TOO_MANY_CONNECTIONS = Close(4429, "too_many_connections")
UNAVAILABLE = Close(4503, "unavailable")
POLICY_VIOLATION = Close(4490, "policy_violation")  # message rate exceeded, too many invalid messages
SERVER_ERROR = Close(1011, "server_error")  # a handler failed; the socket's resources are released
NORMAL = Close(1000, "normal")

# Not sent on the wire: the code the production server reports to the application (in
# ``websocket.disconnect``) for a socket it dropped because its pongs stopped coming. The peer
# was last seen alive WS_PING_TIMEOUT before that.
PING_TIMEOUT_DISCONNECT = 4408


class Refused(Exception):
    """The server refuses (or ends) a socket with ``close`` and a reason fit for the client."""

    def __init__(self, close: Close, message: str):
        super().__init__(message)
        self.close = close
        self.message = message


# The errors a handshake or an open socket may end with; ``refusal_for`` maps each to a close code.
REFUSABLE_ERRORS = (
    Refused,
    InvalidToken,
    CallNotFound,
    NotAParticipant,
    InvalidTransition,
    PersistenceUnavailable,
    LayerUnavailable,
)


def refusal_for(exc: Exception) -> Refused:
    """The one place a domain error becomes a close code."""
    if isinstance(exc, Refused):
        return exc
    if isinstance(exc, InvalidToken):
        return Refused(UNAUTHENTICATED, str(exc))
    if isinstance(exc, CallNotFound):
        return Refused(CALL_NOT_FOUND, "No such call.")
    if isinstance(exc, NotAParticipant):
        return Refused(FORBIDDEN, "You are not a participant of this call.")
    if isinstance(exc, InvalidTransition):
        return Refused(CALL_ALREADY_ENDED, "The call has already ended.")
    if isinstance(exc, PersistenceUnavailable):
        return Refused(UNAVAILABLE, exc.message)
    if isinstance(exc, LayerUnavailable):
        return Refused(UNAVAILABLE, exc.message)
    raise TypeError(f"No close code for {type(exc).__name__}") from exc
