"""A password validator beside Django's own (``AUTH_PASSWORD_VALIDATORS``)."""

from __future__ import annotations

from django.core.exceptions import ValidationError


class PasswordVarietyValidator:
    """Refuses a password that is only whitespace or has fewer than ``min_distinct`` distinct
    characters: ten spaces, ``uuuuuuuu1`` and ``abababab`` pass the length check, not this."""

    def __init__(self, min_distinct: int = 5):
        self.min_distinct = min_distinct

    def validate(self, password: str, user=None) -> None:
        if not password.strip():
            raise ValidationError("This password is only whitespace.", code="password_only_whitespace")
        if len(set(password)) < self.min_distinct:
            raise ValidationError(
                f"This password has fewer than {self.min_distinct} different characters.",
                code="password_too_uniform",
            )

    def get_help_text(self) -> str:
        return f"Your password must hold at least {self.min_distinct} different characters, not only whitespace."
