"""The floor for the signaling relay: the same routing as the service's signaling socket,
written directly on the websockets library, in one process, with nothing else.

``/v1/calls/ws/signaling?call_id=<uuid>`` with ``Authorization: Bearer <access token>``
(checked once, with PyJWT, as the service does); every frame is parsed, its type and fields
checked, stamped with ``call_id``, ``sender_id`` and ``timestamp``, and sent to the target's
sockets (``target_id``) or to every other participant's. No database, no channel layer, no
rate limits, no presence: what is left is the least any Python relay must do per message.

    python -m bench.floor_relay --port 8090
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections import defaultdict
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import jwt
from websockets.asyncio.server import serve

from bench.common import JWT_SECRET

PATH = "/v1/calls/ws/signaling"
FIELDS = {"offer": "sdp", "answer": "sdp", "ice_candidate": "candidate", "mute_audio": "muted", "mute_video": "muted"}
RELAYED = {*FIELDS, "join", "leave"}

# call id -> user id -> open sockets
calls: dict[str, dict[str, set]] = defaultdict(lambda: defaultdict(set))


def timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def handler(websocket) -> None:
    request = websocket.request
    parts = urlsplit(request.path)
    call_id = (parse_qs(parts.query).get("call_id") or [""])[0]
    header = request.headers.get("Authorization", "")
    try:
        if parts.path.rstrip("/") != PATH or not call_id or not header.startswith("Bearer "):
            raise jwt.InvalidTokenError("bad request")
        claims = jwt.decode(
            header[7:], JWT_SECRET, algorithms=["HS256"], audience="secureconnect-api", issuer="secureconnect-auth"
        )
    except jwt.InvalidTokenError:
        await websocket.close(4401, "unauthenticated")
        return
    user_id = claims["user_id"]
    members = calls[call_id]
    others = [u for u in members if u != user_id and members[u]]
    await websocket.send(json.dumps({"type": "participants", "call_id": call_id, "participants": others}))
    join = json.dumps({"type": "join", "call_id": call_id, "sender_id": user_id, "timestamp": timestamp()})
    for user in others:
        for peer in list(members[user]):
            await peer.send(join)
    members[user_id].add(websocket)
    try:
        async for text in websocket:
            message = json.loads(text)
            kind = message.get("type")
            if kind == "ping":
                await websocket.send(json.dumps({"type": "pong", "timestamp": timestamp()}))
                continue
            if kind not in RELAYED:
                continue
            out = {"type": kind, "call_id": call_id, "sender_id": user_id}
            target = message.get("target_id")
            if target:
                out["target_id"] = target
            field = FIELDS.get(kind)
            if field:
                out[field] = message[field]
            out["timestamp"] = timestamp()
            encoded = json.dumps(out, separators=(",", ":"))
            recipients = [target] if target else [u for u in members if u != user_id]
            for user in recipients:
                for peer in list(members.get(user, ())):
                    await peer.send(encoded)
    finally:
        members[user_id].discard(websocket)


async def main(port: int) -> None:
    async with serve(handler, "127.0.0.1", port, compression=None, max_size=64 * 1024, ping_interval=None):
        print(f"floor relay on ws://127.0.0.1:{port}{PATH} (pid {os.getpid()})", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
