from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer

from core.api import envelope


class EnvelopeJSONRenderer(JSONRenderer):
    """Wraps what a view returns in the success envelope, and error bodies in the error envelope.

    Views return their payload only. The exception handler returns the ``error`` member, which
    lands here because its status is 4xx/5xx; any other error payload a view returns by hand is
    wrapped under ``details`` with the code its status implies. A view that set the
    ``X-Persistence: deferred`` header gets ``meta.persistence = "deferred"`` (the header stays).
    """

    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if response is None:
            return super().render(data, accepted_media_type, renderer_context)
        if response.status_code == 204:
            return b""
        persistence = response.headers.get(envelope.PERSISTENCE_HEADER) or None
        if response.status_code >= 400:
            if not envelope.is_error_body(data):
                code = envelope.code_for_status(response.status_code)
                data = envelope.error_body(code, details=data if isinstance(data, dict) else {"errors": data})
            body = envelope.error_envelope(data, persistence=persistence)
        else:
            body = envelope.success_envelope(data, persistence=persistence)
        return super().render(body, accepted_media_type, renderer_context)


# The Accept values DRF would answer with the renderer's own media type: no header, anything, JSON.
_PLAIN_ACCEPTS = frozenset({None, "", "*/*", "application/json"})


class FallbackContentNegotiation(DefaultContentNegotiation):
    """JSON out whatever the client's ``Accept`` says: a view's first renderer instead of 406.

    A view with one renderer (every view here) asked for no format and nothing but JSON gets it
    without DRF parsing and ranking the Accept header: what DRF would choose, without its cost on
    every request (docs/benchmarks.md, "Issue 17: one round trip per write")."""

    def select_renderer(self, request, renderers, format_suffix=None):
        if (
            len(renderers) == 1
            and not format_suffix
            and request.META.get("HTTP_ACCEPT") in _PLAIN_ACCEPTS
            and self.settings.URL_FORMAT_OVERRIDE not in request.query_params
        ):
            return renderers[0], renderers[0].media_type
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type
