"""Drill (b): Redis goes away for 30 s while calls are signaling.

The service reaches Redis (channel layer and cache) through a loopback proxy the drill takes
down and brings back. Pairs trade ICE candidates throughout. While Redis is away: /health must
stay 200, open signaling sockets must be closed with 4503 (not dropped or left hanging), and a
new socket must be refused cleanly (an error message, then close 4503). After Redis returns, a
fresh pair must connect and relay an offer within seconds, with no restart.

    .venv-test/bin/python -m bench.drills.redis_outage            # 30 s outage
    .venv-test/bin/python -m bench.drills.redis_outage --outage 10
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.common import arg_parser, write_results
from bench.drills.common import HealthWatch, drill_setup, verdict
from bench.services import Server
from bench.tcp_proxy import TcpProxy

PATH = "/v1/calls/ws/signaling"
CANDIDATE = json.dumps(
    {"type": "ice_candidate", "candidate": {"candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host"}}
)


async def open_socket(server: Server, call_id: str, token: str):
    return await connect(
        f"{server.ws_url}{PATH}?call_id={call_id}",
        additional_headers={"Authorization": f"Bearer {token}"},
        proxy=None,
        compression=None,
        open_timeout=10,
        ping_interval=None,
    )


class Socket:
    """A signaling socket that counts what it receives and remembers how it ended."""

    def __init__(self, ws):
        self.ws = ws
        self.relayed = 0
        self.error_close_codes: list[int] = []
        self.closed_at: float | None = None
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                if message.get("type") == "ice_candidate":
                    self.relayed += 1
                elif message.get("type") == "error" and "close_code" in message:
                    self.error_close_codes.append(message["close_code"])
        except ConnectionClosed:
            pass
        self.closed_at = time.monotonic()

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code


async def send_candidates(socket: Socket) -> None:
    with contextlib.suppress(ConnectionClosed):
        while socket.closed_at is None:
            await socket.ws.send(CANDIDATE)
            await asyncio.sleep(0.05)


async def refused_cleanly(server: Server, pair) -> str:
    """What a new socket meets: 'refused 4503' is the clean answer while Redis is away."""
    try:
        ws = await open_socket(server, pair.call_id, pair.caller.token)
    except Exception as exc:
        return f"handshake failed: {type(exc).__name__}"
    try:
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if first.get("type") != "error":
            return f"accepted ({first.get('type')})"
        with contextlib.suppress(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        return f"refused {first.get('close_code')}/{ws.close_code}"
    except ConnectionClosed:
        return f"closed {ws.close_code} without a message"
    except TimeoutError:
        return "no answer in 10 s"
    finally:
        await ws.close()


async def relays_again(server: Server, pair) -> bool:
    """A fresh caller and callee connect and an offer goes through."""
    caller = callee = None
    try:
        caller = await open_socket(server, pair.call_id, pair.caller.token)
        callee = await open_socket(server, pair.call_id, pair.callee.token)
        await caller.send(json.dumps({"type": "offer", "sdp": "v=0 drill"}))
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            message = json.loads(await asyncio.wait_for(callee.recv(), deadline - time.monotonic()))
            if message.get("type") == "offer":
                return True
            if message.get("type") == "error" and "close_code" in message:
                return False
        return False
    except (Exception, TimeoutError):
        return False
    finally:
        for ws in (caller, callee):
            if ws is not None:
                await ws.close()


async def drill(server: Server, proxy: TcpProxy, pairs, args) -> dict:
    watch = HealthWatch(server)
    watch.start()
    sockets = []
    for pair in pairs:
        sockets += [Socket(await open_socket(server, pair.call_id, p.token)) for p in (pair.caller, pair.callee)]
    senders = [asyncio.create_task(send_candidates(s)) for s in sockets[::2]]
    await asyncio.sleep(args.before)
    relayed_before = sum(s.relayed for s in sockets)

    proxy.down()
    down = time.monotonic()
    print(f"  Redis down at {time.strftime('%X')} for {args.outage:g} s", flush=True)
    attempts = Counter()
    while time.monotonic() - down < args.outage:
        attempts[await refused_cleanly(server, pairs[0])] += 1
        await asyncio.sleep(1.0)
    open_at_end_of_outage = sum(1 for s in sockets if s.closed_at is None)
    proxy.up()
    returned = time.monotonic()
    print(f"  Redis back at {time.strftime('%X')}", flush=True)
    recovered_after = None
    n = 0
    while time.monotonic() - returned < args.recovery_timeout:
        if await relays_again(server, pairs[n % len(pairs)]):
            recovered_after = round(time.monotonic() - returned, 2)
            break
        n += 1
        await asyncio.sleep(0.5)
    for task in senders:
        task.cancel()
    for s in sockets:
        await s.ws.close()
    await asyncio.gather(*senders, *[s.task for s in sockets], return_exceptions=True)
    await watch.stop()
    close_codes = Counter(str(s.close_code) for s in sockets)
    closed_in = [s.closed_at - down for s in sockets if s.closed_at is not None and s.closed_at >= down]
    return {
        "outage_s": args.outage,
        "sockets": len(sockets),
        "relayed_before_outage": relayed_before,
        "sockets_closed_by_server_during_outage": len(sockets) - open_at_end_of_outage,
        "sockets_left_open_through_outage": open_at_end_of_outage,
        "close_codes": dict(close_codes),
        "told_4503_before_close": sum(1 for s in sockets if 4503 in s.error_close_codes),
        "slowest_close_after_outage_s": round(max(closed_in), 2) if closed_in else None,
        "new_sockets_during_outage": dict(attempts),
        "signaling_works_again_after_s": recovered_after,
        "health_polls": watch.polls,
        "health_not_200": len(watch.not_ok),
    }


def run(args, log_dir: Path) -> dict:
    setup_env = {"DB_STARTUP_MODE": "blocking"}
    with drill_setup(
        "redis", clients=args.pairs, log_dir=log_dir, cut="redis", with_calls=True, env=setup_env
    ) as setup:
        server = Server(env=setup.env, log_path=log_dir / "server.log").start()
        try:
            counts = asyncio.run(drill(server, setup.proxy, setup.pairs, args))
        finally:
            server.stop()
    clean = [k for k in counts["new_sockets_during_outage"] if k == "refused 4503/4503"]
    passed = (
        counts["relayed_before_outage"] > 0
        and counts["health_not_200"] == 0
        and counts["sockets_left_open_through_outage"] == 0
        and set(counts["close_codes"]) == {"4503"}
        and len(clean) == len(counts["new_sockets_during_outage"]) > 0
        and counts["signaling_works_again_after_s"] is not None
        and counts["signaling_works_again_after_s"] <= args.recovery_limit
    )
    return {"passed": passed, "counts": counts}


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--outage", type=float, default=30.0, help="seconds Redis is away")
    parser.add_argument("--before", type=float, default=3.0, help="seconds of signaling before the outage")
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--recovery-limit", type=float, default=10.0, help="seconds allowed to relay again (PASS)")
    parser.add_argument("--recovery-timeout", type=float, default=60.0)
    parser.add_argument("--logs", type=Path, help="keep the service's logs in this folder")
    args = parser.parse_args(argv)
    if args.smoke:
        args.outage, args.before, args.pairs = 2.0, 1.0, 3
    with tempfile.TemporaryDirectory(prefix="bench-drill-redis-") as tmp:
        result = run(args, args.logs or Path(tmp))
    verdict("Drill (b) Redis outage", result["passed"], result["counts"])
    config = {"outage_s": args.outage, "pairs": args.pairs, "smoke": args.smoke}
    write_results("drill_redis_outage", {"config": config, **result}, args.out)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
