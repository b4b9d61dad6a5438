"""Middleware for the admin pages (the API's own is in ``secureconnect/api/middleware.py``)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone


class AdminTimeZoneMiddleware:
    """The admin renders times in ``ADMIN_TIME_ZONE`` (the ``TIME_ZONE`` variable); everything
    else keeps Django's ``TIME_ZONE``, UTC, so the API's times and the parsing of its query
    parameters never depend on where the admin's readers are."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(reverse("admin:index")):
            return self.get_response(request)
        with timezone.override(settings.ADMIN_TIME_ZONE):
            return self.get_response(request)
