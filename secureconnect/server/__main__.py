"""``python -m secureconnect.server [--bind ADDRESS] [--port PORT] [--application PATH]``.

Serves ``settings.ASGI_APPLICATION`` on ``SERVER_HOST``:``SERVER_PORT`` with the limits described
in ``secureconnect/server/__init__.py``, under uvicorn (``SERVER_IMPLEMENTATION=uvicorn``, the
default) or daphne (``SERVER_IMPLEMENTATION=daphne``). ``daphne secureconnect.asgi:application``
and ``manage.py runserver`` keep working for development, without those limits.

With ``SERVER_WORKERS`` > 1 this process runs that many worker processes on the address, each
listening on a socket of its own bound with ``SO_REUSEPORT`` (Linux), so that the kernel hands
each new connection to one of them, evenly. On one shared listening socket the first worker to
wake accepts every connection queued, so the keep-alive connections of a burst of clients (a
proxy's, a load test's) all landed on one worker and the others idled (measured: one core busy
of two). Where ``SO_REUSEPORT`` is missing the workers share one socket as before. Sockets on
different workers reach each other through the Redis channel layer, as on different hosts.
SIGTERM or SIGINT stops the workers; a worker that dies stops the others too, and the command
exits with its code (the orchestrator restarts the container).
"""

import argparse
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time

from asgiref.compatibility import guarantee_single_callable


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "secureconnect.settings")
    parser = argparse.ArgumentParser(prog="python -m secureconnect.server", description=__doc__.splitlines()[0])
    parser.add_argument("--bind", help="address to listen on (default: SERVER_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (default: SERVER_PORT)")
    parser.add_argument("--application", help="ASGI application, module.attribute (default: ASGI_APPLICATION)")
    parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)  # a worker: serve this inherited socket
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)  # a worker: own socket
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

    host = args.bind or settings.SERVER_HOST
    port = settings.SERVER_PORT if args.port is None else args.port
    if args.reuse_port:  # a worker of the supervisor: a listening socket of its own on the shared port
        listener = reuse_port_socket(host, port)
        listener.listen(LISTEN_BACKLOG)
        args.fd = listener.fileno()
    if args.fd is None and settings.SERVER_WORKERS > 1:
        if not settings.REDIS_URL:
            sys.stderr.write(
                "Configuration error: SERVER_WORKERS > 1 needs REDIS_URL (the in-memory layer spans one process)\n"
            )
            sys.exit(2)
        sys.exit(supervise(workers=settings.SERVER_WORKERS, host=host, port=port, application=args.application))
    logging.getLogger("secureconnect.server").info(
        "Serving %s with %s on %s:%s (headers within %ss, bodies up to %s bytes, "
        "WebSocket pings every %ss, %ss to answer)",
        args.application or settings.ASGI_APPLICATION,
        settings.SERVER_IMPLEMENTATION,
        host,
        port,
        settings.HTTP_HEADER_TIMEOUT,
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
        settings.WS_PING_INTERVAL,
        settings.WS_PING_TIMEOUT,
    )
    if settings.SERVER_IMPLEMENTATION == "daphne":
        serve_with_daphne(application, host=host, port=port, fd=args.fd)
    else:
        from secureconnect.server.uvicorn_protocols import serve
        from signaling.protocol import MAX_MESSAGE_BYTES

        serve(
            guarantee_single_callable(application),
            host=host,
            port=port,
            fd=args.fd,
            header_timeout=settings.HTTP_HEADER_TIMEOUT,
            max_body_bytes=settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
            ping_interval=settings.WS_PING_INTERVAL,
            ping_timeout=settings.WS_PING_TIMEOUT,
            max_message_bytes=MAX_MESSAGE_BYTES,
        )


def serve_with_daphne(application, *, host: str, port: int, fd: int | None) -> None:
    """daphne's Server with the production limits (``secureconnect.server.protocols``)."""
    import daphne.server  # noqa: F401, I001 - first: installs Twisted's asyncio reactor

    from daphne.access import AccessLogGenerator
    from daphne.endpoints import build_endpoint_description_strings
    from django.conf import settings

    from secureconnect.server.protocols import ProductionServer
    from signaling.protocol import MAX_MESSAGE_BYTES

    ProductionServer(
        guarantee_single_callable(application),
        endpoints=(
            [f"fd:fileno={fd}"]  # the supervisor's socket (AF_INET: Twisted's fd endpoint default)
            if fd is not None
            else build_endpoint_description_strings(host=host, port=port)
        ),
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


LISTEN_BACKLOG = 2048


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """An IPv4 socket (what daphne's fd endpoint adopts) bound to ``host:port`` with
    ``SO_REUSEPORT``: the kernel spreads connections over every listening socket bound so."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def supervise(*, workers: int, host: str, port: int, application: str | None) -> int:
    """Run ``workers`` worker processes on ``host:port`` and wait for them.

    With ``SO_REUSEPORT`` this process holds the port bound (never listening, so it is handed no
    connection) and each worker listens on a socket of its own; without it they share this
    process's listening socket."""
    if hasattr(socket, "SO_REUSEPORT"):
        listener = reuse_port_socket(host, port)
        port = listener.getsockname()[1]
        worker_args, passed = ["--reuse-port"], ()
    else:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(LISTEN_BACKLOG)
        worker_args, passed = ["--fd", str(listener.fileno())], (listener.fileno(),)
    command = [sys.executable, "-m", "secureconnect.server", "--bind", host, "--port", str(port), *worker_args]
    if application:
        command += ["--application", application]
    children = [
        subprocess.Popen(command, pass_fds=passed, preexec_fn=_die_with_parent)  # noqa: S603
        for _ in range(workers)
    ]
    logging.getLogger("secureconnect.server").info(
        "%d workers on %s:%s: %s", workers, host, port, [c.pid for c in children]
    )
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    while any(child.poll() is None for child in children):
        exited = [child for child in children if child.returncode is not None]
        if exited and not stopping:  # one worker died: stop the others, exit with its code
            code = exited[0].returncode or 1
            stop(None, None)
        time.sleep(0.2)
    listener.close()
    return code


def _die_with_parent() -> None:
    """In a worker, before exec: SIGTERM when the supervisor goes, even by kill -9 (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


if __name__ == "__main__":
    main()
