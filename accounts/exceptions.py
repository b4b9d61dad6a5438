"""The accounts domain's errors. Services raise them; ``core.api.exception_handler`` turns
them into the error envelope (``code`` is the API error code)."""

from core.exceptions import ApplicationError


class AccountError(ApplicationError):
    code = "CONFLICT"
    default_message = "The request conflicts with the account's state."


class AccountAlreadyExists(AccountError):
    """The email or the username is taken; ``details`` names which."""

    code = "CONFLICT"
    default_message = "An account with that email or username already exists."


class InvalidCredentials(AccountError):
    """One message for an unknown email, a wrong password and a disabled account alike."""

    code = "UNAUTHORIZED"
    default_message = "Invalid email or password."


class AccountUnavailable(AccountError):
    """A valid token whose account has since been deleted or disabled."""

    code = "UNAUTHORIZED"
    default_message = "This account no longer exists or is disabled."


class NotYourToken(AccountError):
    code = "FORBIDDEN"
    default_message = "That refresh token belongs to another account."
