"""The Content-Security-Policy of the pages the service renders: the web client (``/app/``),
the API docs (``/v1/docs``) and the admin. One policy, allowing this origin only; a page adds
what it needs of its own (the web client its sockets and camera streams)."""

from __future__ import annotations

import base64
import functools
import hashlib
import re

from django.http import HttpRequest, HttpResponse
from django.template.loader import get_template
from django.urls import reverse

HEADER = "Content-Security-Policy"
DIRECTIVES = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
DOCS_TEMPLATE = "drf_spectacular/swagger_ui.html"


def content_security_policy(**directives: str) -> str:
    """The policy; keyword arguments (``connect_src="'self' wss://host"``) add or replace directives."""
    merged = {**DIRECTIVES, **{name.replace("_", "-"): value for name, value in directives.items()}}
    return "; ".join(f"{name} {value}" for name, value in merged.items())


@functools.cache
def inline_style_hashes(template_name: str) -> str:
    """CSP hashes of a template's fixed ``<style>`` blocks (drf-spectacular's Swagger page has one),
    so that they apply without allowing inline styles in general."""
    source = get_template(template_name).template.source
    blocks = re.findall(r"<style>(.*?)</style>", source, flags=re.DOTALL)
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()}'" for block in blocks
    )


@functools.cache
def _protected_paths() -> tuple[str, str]:
    return reverse("admin:index"), reverse("docs")


class ContentSecurityPolicyMiddleware:
    """Puts the policy on the admin's pages and the API docs (pages drawn by other packages);
    a view that sets its own policy (the web client) keeps it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if HEADER in response:
            return response
        admin_prefix, docs_path = _protected_paths()
        if request.path == docs_path:
            response[HEADER] = content_security_policy(style_src=f"'self' {inline_style_hashes(DOCS_TEMPLATE)}")
        elif request.path.startswith(admin_prefix):
            response[HEADER] = content_security_policy()
        return response
