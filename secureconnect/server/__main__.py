"""``python -m secureconnect.server [--bind ADDRESS] [--port PORT] [--application PATH]``.

Serves ``settings.ASGI_APPLICATION`` on ``SERVER_HOST``:``SERVER_PORT`` with the limits described
in ``secureconnect/server/__init__.py``. ``daphne secureconnect.asgi:application`` and
``manage.py runserver`` keep working for development, without those limits.
"""

import daphne.server  # noqa: F401, I001 - first: installs Twisted's asyncio reactor

import argparse
import logging
import os
import sys

from asgiref.compatibility import guarantee_single_callable
from daphne.access import AccessLogGenerator
from daphne.endpoints import build_endpoint_description_strings


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "secureconnect.settings")
    parser = argparse.ArgumentParser(prog="python -m secureconnect.server", description=__doc__.splitlines()[0])
    parser.add_argument("--bind", help="address to listen on (default: SERVER_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (default: SERVER_PORT)")
    parser.add_argument("--application", help="ASGI application, module.attribute (default: ASGI_APPLICATION)")
    args = parser.parse_args(argv)

    import django
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.utils.module_loading import import_string

    try:
        django.setup()
        application = import_string((args.application or settings.ASGI_APPLICATION).replace(":", "."))
    except ImproperlyConfigured as exc:  # one clear line for the operator, not a traceback
        sys.stderr.write(f"Configuration error: {exc}\n")
        sys.exit(2)

    from secureconnect.server.protocols import ProductionServer
    from signaling.protocol import MAX_MESSAGE_BYTES

    host = args.bind or settings.SERVER_HOST
    port = settings.SERVER_PORT if args.port is None else args.port
    logging.getLogger("secureconnect.server").info(
        "Serving %s on %s:%s (headers within %ss, bodies up to %s bytes, WebSocket pings every %ss, %ss to answer)",
        args.application or settings.ASGI_APPLICATION,
        host,
        port,
        settings.HTTP_HEADER_TIMEOUT,
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
        settings.WS_PING_INTERVAL,
        settings.WS_PING_TIMEOUT,
    )
    ProductionServer(
        guarantee_single_callable(application),
        endpoints=build_endpoint_description_strings(host=host, port=port),
        action_logger=AccessLogGenerator(sys.stdout),
        http_header_timeout=settings.HTTP_HEADER_TIMEOUT,
        max_request_body_bytes=settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
        ping_interval=settings.WS_PING_INTERVAL,
        ping_timeout=settings.WS_PING_TIMEOUT,
        websocket_timeout=-1,  # a socket lives while it answers pings; the application decides the rest
        websocket_connect_timeout=5,  # daphne's command-line defaults, as production ran before
        websocket_handshake_timeout=5,
        websocket_max_message_size=MAX_MESSAGE_BYTES,
        websocket_max_frame_size=MAX_MESSAGE_BYTES,
    ).run()


if __name__ == "__main__":
    main()
