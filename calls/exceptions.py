"""The call domain's errors. Services raise them; the API and the WebSocket consumers turn
them into the error envelope and close codes, each in exactly one place."""

from django.conf import settings

from core.exceptions import ApplicationError


class CallError(ApplicationError):
    """Base of every call domain error; ``code`` is the API error code it maps to."""

    code = "CONFLICT"
    default_message = "The request conflicts with the call's state."


class CallNotFound(CallError):
    code = "NOT_FOUND"
    default_message = "Call not found."


class ConversationNotFound(CallError):
    code = "NOT_FOUND"
    default_message = "Conversation not found."


class NotAParticipant(CallError):
    code = "FORBIDDEN"
    default_message = "You are not a participant."


class InvalidCallRequest(CallError):
    code = "VALIDATION_ERROR"
    default_message = "The call request is invalid."


class InvalidTransition(CallError):
    code = "CONFLICT"
    default_message = "That action is not possible in the call's current state."


class CallAlreadyLive(CallError):
    code = "CONFLICT"
    default_message = "The conversation already has a call in progress."


class CallFull(CallError):
    code = "CONFLICT"
    default_message = "The call is full."


class PersistenceUnavailable(CallError):
    """The database is away and this request cannot be served from the spool."""

    code = "PERSISTENCE_UNAVAILABLE"
    default_message = "Call history is temporarily unavailable; try again shortly."

    def __init__(self, message: str | None = None, *, retry_after: int | None = None, details: dict | None = None):
        if retry_after is None:
            retry_after = settings.PERSISTENCE_RETRY_AFTER  # the one setting (default 5 s)
        super().__init__(message, details=details, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after
