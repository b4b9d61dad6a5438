"""The browser call client's one page. Everything else it needs is a static file
(``static/webclient/``) and the public API (REST, the signaling and events sockets)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe


def content_security_policy(request: HttpRequest) -> str:
    """Only this origin's scripts, styles and sockets; camera and microphone streams are blob/media."""
    host = request.get_host()
    sockets = f"ws://{host} wss://{host}"
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "media-src 'self' blob: mediastream:",
            f"connect-src 'self' {sockets}",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


@require_safe
def app_page(request: HttpRequest) -> HttpResponse:
    response = render(request, "webclient/index.html")
    response["Content-Security-Policy"] = content_security_policy(request)
    response["Cache-Control"] = "no-cache"
    return response
