"""ASGI entry point: HTTP through Django, WebSockets through Channels (daphne serves both)."""

import os
import sys

import django
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "secureconnect.settings")

try:
    django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application does
    from secureconnect.request_threads import OneCallASGIHandler, ReusedRequestThreads

    django_asgi_app = OneCallASGIHandler()
except ImproperlyConfigured as exc:  # one clear line for the operator, not a traceback
    sys.stderr.write(f"Configuration error: {exc}\n")
    sys.exit(2)

if settings.DB_STARTUP_MODE == "blocking":
    # The operator asked to serve only once the start-up check has settled (connected or limited).
    from calls.background_threads import wait_until_settled

    wait_until_settled()

from channels.routing import ProtocolTypeRouter, URLRouter

from signaling.routing import websocket_urlpatterns

# No AllowedHostsOriginValidator or session middleware: the signaling consumers check Origin and
# the bearer token themselves, so that a refusal reaches a browser as a close code with a reason.
# Requests' sync code runs in one call per request, on reused threads (secureconnect/request_threads.py).
application = ProtocolTypeRouter(
    {
        "http": ReusedRequestThreads(django_asgi_app, max_running=settings.SERVER_THREADS),
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
