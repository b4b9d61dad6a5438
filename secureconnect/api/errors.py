"""Django's error views (``handler400/403/404/500`` in ``secureconnect/urls.py``): the error
envelope on API paths, Django's own pages elsewhere (the admin)."""

from django.core.exceptions import RequestDataTooBig
from django.views import defaults

from core.api import envelope
from secureconnect.api.middleware import is_api_path


def bad_request(request, exception=None):
    if not is_api_path(request.path):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return envelope.error_response(413)
    return envelope.error_response(400)


def permission_denied(request, exception=None):
    if not is_api_path(request.path):
        return defaults.permission_denied(request, exception)
    return envelope.error_response(403)


def not_found(request, exception=None):
    if not is_api_path(request.path):
        return defaults.page_not_found(request, exception)
    return envelope.error_response(404)


def server_error(request):
    if not is_api_path(request.path):
        return defaults.server_error(request)
    return envelope.error_response(500)
