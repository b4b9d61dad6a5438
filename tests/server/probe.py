"""A tiny ASGI application the production server's tests serve with the same command
(``python -m secureconnect.server --application tests.server.probe:application``).

HTTP: ``GET /events`` answers what the WebSockets saw so far; any other request answers how many
body bytes reached the application and the ``content-length`` it was given.
WebSocket: accepts, echoes every message, and records ``connect``, ``receive`` (with the
message's size) and ``disconnect`` (with its ``code``), each with the wall-clock time, under the
socket's path.
"""

import json
import time

events: list[dict] = []


def _record(path: str, event: str, **details) -> None:
    events.append({"path": path, "event": event, "at": time.time(), **details})


async def _answer(send, payload) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def application(scope, receive, send):
    if scope["type"] == "http":
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            received += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        if scope["path"] == "/events":
            await _answer(send, events)
            return
        headers = dict(scope["headers"])
        content_length = headers.get(b"content-length", b"").decode() or None
        await _answer(send, {"received": received, "content_length": content_length})
    elif scope["type"] == "websocket":
        path = scope["path"]
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        _record(path, "connect")
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                _record(path, "disconnect", code=message.get("code"))
                return
            data = message.get("text") if message.get("text") is not None else message.get("bytes")
            _record(path, "receive", size=len(data))
            key = "text" if isinstance(data, str) else "bytes"
            await send({"type": "websocket.send", key: data})
