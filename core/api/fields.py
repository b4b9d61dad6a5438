"""Serializer pieces shared by the apps' APIs."""

from __future__ import annotations

from rest_framework import serializers

from core.text import unsafe_characters


def refuse_unsafe_characters(value: str) -> None:
    """Validator: control, bidirectional-formatting and other invisible characters are refused
    (the rule is ``core.text``)."""
    found = unsafe_characters(value)
    if found:
        raise serializers.ValidationError(
            f"Must not contain control or formatting characters (found {', '.join(found[:5])})."
        )


class PlainTextField(serializers.CharField):
    """A single line of text other people see: a title, a display name."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators.append(refuse_unsafe_characters)
