"""The browser call client's one page. Everything else it needs is a static file
(``static/webclient/``) and the public API (REST, the signaling and events sockets)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from core import security


def content_security_policy(request: HttpRequest) -> str:
    """The service's one policy, plus this origin's sockets and the camera and microphone streams."""
    host = request.get_host()
    return security.content_security_policy(
        media_src="'self' blob: mediastream:", connect_src=f"'self' ws://{host} wss://{host}"
    )


@require_safe
def app_page(request: HttpRequest) -> HttpResponse:
    response = render(request, "webclient/index.html")
    response["Content-Security-Policy"] = content_security_policy(request)
    response["Cache-Control"] = "no-cache"
    return response
