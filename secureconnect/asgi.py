"""ASGI entry point: HTTP through Django, WebSockets through Channels (daphne serves both)."""

import os
import sys

from django.core.asgi import get_asgi_application
from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "secureconnect.settings")

try:
    django_asgi_app = get_asgi_application()
except ImproperlyConfigured as exc:  # one clear line for the operator, not a traceback
    sys.stderr.write(f"Configuration error: {exc}\n")
    sys.exit(2)

from channels.routing import ProtocolTypeRouter

application = ProtocolTypeRouter({"http": django_asgi_app})
