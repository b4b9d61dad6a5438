import uuid

from django.contrib.auth.models import AbstractUser, UserManager
from django.core.validators import MinLengthValidator, RegexValidator
from django.db import models

from accounts.emails import canonical_email

username_validator = RegexValidator(r"^[A-Za-z0-9_.-]+\Z", "Use letters, digits, dots, dashes and underscores only.")


class AccountManager(UserManager):
    """Users log in with their email; the username is a public handle. Emails are stored, and
    looked up (``get_by_natural_key``: the admin login, ``createsuperuser``), in their
    canonical form (``accounts.emails``)."""

    @classmethod
    def normalize_email(cls, email):
        return canonical_email(email or "")

    def get_by_natural_key(self, username):
        return super().get_by_natural_key(canonical_email(username or ""))

    def _create_user_object(self, username, email, password, **extra_fields):
        if not email:
            raise ValueError("Users need an email address")
        return super()._create_user_object(username, self.normalize_email(email), password, **extra_fields)

    def create_user(self, username=None, email=None, password=None, **extra_fields):
        return super().create_user(username, email, password, **extra_fields)

    def create_superuser(self, username=None, email=None, password=None, **extra_fields):
        return super().create_superuser(username, email, password, **extra_fields)


class User(AbstractUser):
    # UUID keys: CockroachDB spreads them across ranges, sequential ids make one hot range.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField("email address", unique=True)
    username = models.CharField(
        max_length=30,
        unique=True,
        validators=[MinLengthValidator(3), username_validator],
        error_messages={"unique": "A user with that username already exists."},
    )
    display_name = models.CharField(max_length=100, blank=True)
    avatar_url = models.URLField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = ["username"]

    objects = AccountManager()

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return self.display_name or self.username

    def save(self, *args, **kwargs):
        """Saving ``is_active`` (the admin, a command, a service) also marks or unmarks the account
        as disabled where tokens are checked, so a disabled account's tokens and open sockets are
        refused at once, without a database query."""
        super().save(*args, **kwargs)
        update_fields = kwargs.get("update_fields")
        if update_fields is None or "is_active" in update_fields:
            from accounts import tokens

            if not self.is_active or tokens.is_user_disabled(self.pk):
                tokens.set_user_disabled(self.pk, not self.is_active)
