"""A TCP proxy on loopback whose availability a test controls: ``down()`` refuses new
connections and cuts open ones (as a database that went away), ``up()`` serves again on the
same port, and ``cut_at(marker)`` goes down at one precise message (a COMMIT whose answer is
lost, or a COMMIT that never arrives)."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time


class TcpProxy:
    def __init__(self, *, target_host: str, target_port: int, port: int = 0):
        self.target = (target_host, target_port)
        self.port = port
        self._listener: socket.socket | None = None
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._trap: tuple[bytes, bool, threading.Event] | None = None

    # --- control -------------------------------------------------------------------------------

    def start(self, *, accepting: bool = True) -> TcpProxy:
        if not self.port:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
        if accepting:
            self.up()
        return self

    def up(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
            self._listener = listener
            self._stopped.clear()
            self._thread = threading.Thread(target=self._accept_loop, args=(listener,), daemon=True)
            self._thread.start()

    def down(self) -> None:
        """Refuse new connections and cut every open one."""
        with self._lock:
            listener, self._listener = self._listener, None
            pairs, self._pairs = self._pairs, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for a, b in pairs:
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def cut_at(self, marker: bytes = b"COMMIT", *, deliver: bool) -> threading.Event:
        """Arm a one-shot fault on the next client message that contains ``marker``.

        ``deliver=True``: the message reaches the server, the server's answer is dropped, and
        once that answer has come (the server acted on it) the proxy goes down: the client
        never learns the outcome of, say, a COMMIT that landed. ``deliver=False``: the message
        is dropped and the proxy goes down at once (the COMMIT never landed). The returned
        event is set once the proxy is down."""
        tripped = threading.Event()
        with self._lock:
            self._trap = (marker, deliver, tripped)
        return tripped

    def _take_trap(self, data: bytes) -> tuple[bool, threading.Event] | None:
        with self._lock:
            if self._trap is None or self._trap[0] not in data:
                return None
            _marker, deliver, tripped = self._trap
            self._trap = None
            return deliver, tripped

    def _trip(self, tripped: threading.Event) -> None:
        self.down()  # before the pump lets go of its sockets: no reconnecting in between
        tripped.set()

    def stop(self) -> None:
        self.down()
        self._stopped.set()

    @property
    def is_up(self) -> bool:
        return self._listener is not None

    # --- plumbing ------------------------------------------------------------------------------

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._pairs.add((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        """Relay between the client ``a`` and the server ``b`` (and spring an armed trap)."""
        selector = selectors.DefaultSelector()
        answer_lost: threading.Event | None = None  # the trap's event once its message was delivered
        deadline = 0.0
        try:
            selector.register(a, selectors.EVENT_READ, b)
            selector.register(b, selectors.EVENT_READ, a)
            while True:
                for key, _ in selector.select(timeout=0.2 if answer_lost else 1.0):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    if answer_lost is not None:
                        if key.fileobj is b:  # the server answered: it acted; the client never hears
                            self._trip(answer_lost)
                            return
                        continue
                    trap = self._take_trap(data) if key.fileobj is a else None
                    if trap is not None:
                        deliver, tripped = trap
                        if not deliver:
                            self._trip(tripped)
                            return
                        key.data.sendall(data)
                        answer_lost, deadline = tripped, time.monotonic() + 5
                        continue
                    key.data.sendall(data)
                if answer_lost is not None and time.monotonic() > deadline:
                    self._trip(answer_lost)  # no answer within 5 s: cut anyway
                    return
                if self._stopped.is_set():
                    return
        except (OSError, ValueError):
            return
        finally:
            selector.close()
            with self._lock:
                self._pairs.discard((a, b))
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.close()
