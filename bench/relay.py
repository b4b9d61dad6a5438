"""Benchmark 1: the signaling relay.

N caller/callee pairs, each on its own active call, trade realistic signaling (an SDP offer or
answer of ~2.5 KB, then ICE candidates: one SDP in eight messages) as fast as the server
carries them, for a fixed time. Each direction of a pair keeps one message in flight: the next
leaves when the peer has received the last, so the latency is the relay's own (client send to
peer receive) and the rate is what the server carries at that concurrency.

The same load goes, in the same run, to:

- ``daphne-redis``: the service as deployed (daphne, channels_redis core layer);
- ``daphne-memory``: the same with the in-memory layer (what Redis costs);
- ``uvicorn-redis``: the same ASGI application under uvicorn (the choice of ASGI server);
- ``floor``: ``bench/floor_relay.py``, the same routing written directly on websockets.

    .venv-test/bin/python -m bench.relay                # N = 10, 100, 500; 10 s each
    .venv-test/bin/python -m bench.relay --pairs 10 100 --duration 5 --variants daphne-redis floor
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.common import METRICS_TOKEN, REDIS_URL, arg_parser, latency_summary, print_table, ratio, write_results
from bench.services import BenchDatabase, Server, raise_open_files_limit, redis_client, redis_delete_own_keys

VARIANTS = ("daphne-redis", "daphne-memory", "uvicorn-redis", "floor")
PRODUCT = "daphne-redis"
PATH = "/v1/calls/ws/signaling"
RELAYED = frozenset({"offer", "answer", "ice_candidate"})
CONNECT_CONCURRENCY = 50
MESSAGE_TIMEOUT = 10.0  # a message not relayed within this is counted lost
WARMUP = 1.0


def sdp(kind: str) -> str:
    """A video+audio SDP of realistic size (~2.5 KB), as a browser would send it."""
    lines = [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "a=extmap-allow-mixed",
        "a=msid-semantic: WMS 7d0f1c2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f",
    ]
    for mid, (media, payloads) in enumerate((("audio", "111 63 9 0 8 13 110 126"), ("video", "96 97 102 103 104"))):
        lines += [
            f"m={media} 9 UDP/TLS/RTP/SAVPF {payloads}",
            "c=IN IP4 0.0.0.0",
            "a=rtcp:9 IN IP4 0.0.0.0",
            "a=ice-ufrag:Xk3p",
            "a=ice-pwd:Jd9s8fK2lQw0e1R7t6Y5u4I3o2P1a0Sd",
            "a=ice-options:trickle",
            "a=fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:4A:AD:B9:B1:3F:82:18:3B",
            f"a=setup:{'actpass' if kind == 'offer' else 'active'}",
            f"a=mid:{mid}",
            "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
            "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
            "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
            "a=sendrecv",
            f"a=msid:7d0f1c2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f {uuid.uuid4()}",
            "a=rtcp-mux",
        ]
        for payload in payloads.split():
            lines += [
                f"a=rtpmap:{payload} {'opus/48000/2' if media == 'audio' else 'VP8/90000'}",
                f"a=rtcp-fb:{payload} transport-cc",
                f"a=fmtp:{payload} minptime=10;useinbandfec=1",
            ]
        lines.append(f"a=ssrc:{1000 + mid} cname:Yq1dKxL8wPz3mN7v")
    return "\r\n".join(lines) + "\r\n"


def frames(role: str) -> list[str]:
    """The eight frames one side sends in turn: its SDP, then seven ICE candidates."""
    out = [json.dumps({"type": "offer" if role == "caller" else "answer", "sdp": sdp(role)})]
    for n in range(7):
        candidate = {
            "candidate": f"candidate:{842163049 + n} 1 udp 1677729535 198.51.100.{n + 1} {50000 + n} typ srflx "
            f"raddr 0.0.0.0 rport 0 generation 0 ufrag Xk3p network-cost 999",
            "sdpMid": "0",
            "sdpMLineIndex": 0,
            "usernameFragment": "Xk3p",
        }
        out.append(json.dumps({"type": "ice_candidate", "candidate": candidate}))
    return out


@dataclass
class Endpoint:
    ws: object
    waiter: asyncio.Future | None = None


@dataclass
class Window:
    """Which messages count: those sent between ``start`` and ``end``."""

    start: float = float("inf")
    end: float = float("inf")
    stop: bool = False
    latencies: list[float] = field(default_factory=list)
    lost: int = 0
    errors: list[str] = field(default_factory=list)


async def reader(endpoint: Endpoint, window: Window) -> None:
    try:
        async for raw in endpoint.ws:
            received = time.perf_counter()
            kind = json.loads(raw).get("type")
            if kind in RELAYED:
                if endpoint.waiter is not None and not endpoint.waiter.done():
                    endpoint.waiter.set_result(received)
            elif kind == "error":
                window.errors.append(raw[:200])
    except ConnectionClosed:
        pass


async def driver(sender: Endpoint, receiver: Endpoint, role: str, window: Window) -> None:
    loop = asyncio.get_running_loop()
    sequence = frames(role)
    n = 0
    while not window.stop:
        receiver.waiter = loop.create_future()
        sent = time.perf_counter()
        try:
            await sender.ws.send(sequence[n % len(sequence)])
            received = await asyncio.wait_for(receiver.waiter, MESSAGE_TIMEOUT)
        except TimeoutError:
            if window.start <= sent < window.end:
                window.lost += 1
            continue
        except ConnectionClosed as exc:
            window.errors.append(f"closed: {exc}")
            return
        if window.start <= sent < window.end:
            window.latencies.append(received - sent)
        n += 1


async def open_socket(base: str, call_id: str, token: str, gate: asyncio.Semaphore):
    async with gate:
        return await connect(
            f"{base}{PATH}?call_id={call_id}",
            additional_headers={"Authorization": f"Bearer {token}"},
            proxy=None,
            compression=None,
            open_timeout=60,
            ping_interval=None,
            max_size=2**20,
        )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 1/100 s


def redis_cpu_seconds() -> float:
    info = redis_client().info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def measure(server: Server, pairs, duration: float, uses_redis: bool) -> dict:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    opened = time.perf_counter()
    sockets = await asyncio.gather(
        *[open_socket(server.ws_url, p.call_id, person.token, gate) for p in pairs for person in (p.caller, p.callee)]
    )
    connect_seconds = time.perf_counter() - opened
    window = Window()
    endpoints = [Endpoint(ws) for ws in sockets]
    readers = [asyncio.create_task(reader(e, window)) for e in endpoints]
    await asyncio.sleep(min(WARMUP, 0.5))  # participants and join messages go by
    drivers = []
    for n in range(len(pairs)):
        caller, callee = endpoints[2 * n], endpoints[2 * n + 1]
        drivers.append(asyncio.create_task(driver(caller, callee, "caller", window)))
        drivers.append(asyncio.create_task(driver(callee, caller, "callee", window)))
    await asyncio.sleep(WARMUP)
    server_cpu, redis_cpu, client_cpu = cpu_seconds(server.process.pid), redis_cpu_seconds(), time.process_time()
    window.start = time.perf_counter()
    await asyncio.sleep(duration)
    window.end = time.perf_counter()
    server_cpu = cpu_seconds(server.process.pid) - server_cpu
    redis_cpu = redis_cpu_seconds() - redis_cpu
    client_cpu = time.process_time() - client_cpu
    window.stop = True
    await asyncio.wait(drivers, timeout=MESSAGE_TIMEOUT + 5)
    for ws in sockets:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 5)
    await asyncio.wait(readers, timeout=10)
    elapsed = window.end - window.start
    summary = latency_summary(window.latencies)
    return {
        "pairs": len(pairs),
        "sockets": len(sockets),
        "connect_s": round(connect_seconds, 2),
        "duration_s": round(elapsed, 2),
        "messages": summary["count"],
        "messages_per_s": round(summary["count"] / elapsed, 1),
        "p50_ms": summary["p50_ms"],
        "p99_ms": summary["p99_ms"],
        "max_ms": summary["max_ms"],
        "lost": window.lost,
        "errors": len(window.errors),
        "error_samples": window.errors[:3],
        "server_cpu_pct": round(100 * server_cpu / elapsed, 1),
        "redis_cpu_pct": round(100 * redis_cpu / elapsed, 1) if uses_redis else 0.0,
        "client_cpu_pct": round(100 * client_cpu / elapsed, 1),
    }


def dropped_messages(server: Server) -> float:
    status, body = server.get("/metrics", token=METRICS_TOKEN)
    if status != 200:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.decode().splitlines()
        if line.startswith("secureconnect_channel_layer_dropped_messages_total")
    )


def make_server(variant: str, database: BenchDatabase, log_dir: Path) -> Server:
    env = {"DATABASE_URL": database.url, "SPOOL_PATH": str(log_dir / f"spool-{variant}.sqlite3")}
    if variant.endswith("-redis"):
        env |= {"REDIS_URL": REDIS_URL, "CHANNEL_LAYER_PREFIX": f"bench-relay-{uuid.uuid4().hex[:8]}"}
    log = log_dir / f"{variant}.log"
    if variant == "floor":
        argv = [sys.executable, "-m", "bench.floor_relay"]
        return Server(kind="floor", env={}, log_path=log, argv=argv)
    return Server(kind=variant.split("-")[0], env=env, log_path=log)


def run(pair_counts: list[int], duration: float, variants: list[str], log_dir: Path) -> dict:
    from bench.data import close_connections, make_pairs, setup_django

    database = BenchDatabase("relay").create()
    runs = []
    try:
        setup_django(database.url)
        pools = {n: make_pairs(n, label="relay", with_calls=True) for n in pair_counts}
        close_connections()
        for variant in variants:
            server = make_server(variant, database, log_dir).start(
                health_path=None if variant == "floor" else "/health"
            )
            try:
                for n in pair_counts:
                    result = asyncio.run(measure(server, pools[n], duration, uses_redis=variant.endswith("-redis")))
                    result = {"variant": variant, **result}
                    if variant != "floor":
                        result["layer_drops"] = dropped_messages(server)
                    runs.append(result)
                    print(
                        f"  {variant:14} N={n:4}: {result['messages_per_s']:9.1f} msg/s  "
                        f"p50 {result['p50_ms']:7.2f} ms  p99 {result['p99_ms']:7.2f} ms  lost {result['lost']}",
                        flush=True,
                    )
            finally:
                server.stop()
    finally:
        close_connections()
        database.drop()
        redis_delete_own_keys()
    return {"runs": runs, "ratios": ratios(runs, pair_counts, variants)}


def ratios(runs: list[dict], pair_counts: list[int], variants: list[str]) -> list[dict]:
    """Each variant against the floor and against the product, per N."""
    by = {(r["variant"], r["pairs"]): r for r in runs}
    out = []
    for n in pair_counts:
        floor, product = by.get(("floor", n)), by.get((PRODUCT, n))
        for variant in variants:
            r = by.get((variant, n))
            if r is None:
                continue
            out.append(
                {
                    "variant": variant,
                    "pairs": n,
                    "throughput_vs_floor": ratio(r["messages_per_s"], floor["messages_per_s"]) if floor else None,
                    "p50_vs_floor": ratio(r["p50_ms"], floor["p50_ms"]) if floor else None,
                    "throughput_vs_product": ratio(r["messages_per_s"], product["messages_per_s"]) if product else None,
                }
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per variant and N")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    args = parser.parse_args(argv)
    if args.smoke:
        global WARMUP
        args.pairs, args.duration, WARMUP = [2], 0.5, 0.2
    raise_open_files_limit()
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        data = run(args.pairs, args.duration, args.variants, Path(tmp))
    by_ratio = {(r["variant"], r["pairs"]): r for r in data["ratios"]}
    print_table(
        "Signaling relay: messages relayed per second and one-way latency",
        ["variant", "N pairs", "msg/s", "p50 ms", "p99 ms", "lost", "vs floor", "server CPU %", "redis CPU %"],
        [
            [
                r["variant"],
                r["pairs"],
                r["messages_per_s"],
                r["p50_ms"],
                r["p99_ms"],
                r["lost"],
                f"{by_ratio[(r['variant'], r['pairs'])]['throughput_vs_floor']}x",
                r["server_cpu_pct"],
                r["redis_cpu_pct"],
            ]
            for r in data["runs"]
        ],
    )
    config = {"pairs": args.pairs, "duration_s": args.duration, "variants": args.variants, "smoke": args.smoke}
    write_results("relay", {"config": config, **data}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
