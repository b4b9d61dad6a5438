import math

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import ValidationError
from django.db import models

from accounts.models import User
from accounts.throttles import login_allowed, record_login_failure


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's log-in, under the API's three login throttles (per account and address, per
    address, per account) and sharing their counters: a wrong password, or a right one for an
    account that may not use the admin, counts as a failure; over a limit even the right
    password is refused until the window has passed."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "throttled": "Too many failed log-ins; try again in %(wait)s seconds.",
    }

    def clean(self):
        email = self.cleaned_data.get("username")
        if email is not None and self.cleaned_data.get("password"):
            wait = login_allowed(self.request, email=email)
            if wait is not None:
                raise ValidationError(
                    self.error_messages["throttled"], code="throttled", params={"wait": math.ceil(wait)}
                )
        try:
            return super().clean()
        except ValidationError:
            if email is not None:
                record_login_failure(self.request, email=email)
            raise


admin.site.login_form = ThrottledAdminAuthenticationForm


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("email", "username", "display_name", "is_active", "is_staff", "created_at")
    list_filter = ("is_active", "is_staff", "is_superuser")
    search_fields = ("email", "username", "display_name", "id")
    ordering = ("email",)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    readonly_fields = ("id", "created_at", "updated_at", "last_login", "date_joined")
    fieldsets = (
        (None, {"fields": ("id", "email", "username", "password")}),
        ("Profile", {"fields": ("display_name", "avatar_url")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined", "created_at", "updated_at")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "username", "password1", "password2")}),)
