"""What the accounts API reads and writes: its input and output serializers."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import User, username_validator
from core.api.fields import PlainTextField, refuse_unsafe_characters

PASSWORD_MAX_LENGTH = 128
TOKEN_MAX_LENGTH = 4096


class UserProfileSerializer(serializers.Serializer):
    """A user as the API shows them; other apps reuse it for the same shape."""

    user_id = serializers.UUIDField(source="id")
    email = serializers.EmailField()
    username = serializers.CharField()
    display_name = serializers.CharField()
    avatar_url = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_avatar_url(self, user: User) -> str | None:
        return user.avatar_url or None


def email_field() -> serializers.EmailField:
    """An email as clients send it; services store and compare its canonical form."""
    return serializers.EmailField(max_length=254, validators=[refuse_unsafe_characters])


class RegisterInput(serializers.Serializer):
    email = email_field()
    username = serializers.CharField(min_length=3, max_length=30, validators=[username_validator])
    password = serializers.CharField(max_length=PASSWORD_MAX_LENGTH, trim_whitespace=False, write_only=True)
    display_name = PlainTextField(max_length=100, required=False, allow_blank=True, default="")


class LoginInput(serializers.Serializer):
    email = email_field()
    password = serializers.CharField(max_length=PASSWORD_MAX_LENGTH, trim_whitespace=False, write_only=True)


class LoginOutput(serializers.Serializer):
    user = UserProfileSerializer()
    access_token = serializers.CharField()
    refresh_token = serializers.CharField()


class RefreshTokenInput(serializers.Serializer):
    refresh_token = serializers.CharField(max_length=TOKEN_MAX_LENGTH)


class LogoutInput(serializers.Serializer):
    refresh_token = serializers.CharField(max_length=TOKEN_MAX_LENGTH, required=False)


class TokenPairOutput(serializers.Serializer):
    access_token = serializers.CharField()
    refresh_token = serializers.CharField(help_text="The replacement refresh token; the one sent is spent.")


class UserLookupQuery(serializers.Serializer):
    q = serializers.CharField(min_length=3, max_length=254, help_text="An exact email address or username.")


class PublicUserSerializer(serializers.Serializer):
    """What anyone signed in may learn about another user: never the email."""

    user_id = serializers.UUIDField(source="id")
    username = serializers.CharField()
    display_name = serializers.CharField()
