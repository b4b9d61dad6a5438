"""Benchmark 1: the signaling relay.

N caller/callee pairs, each on its own active call, trade realistic signaling (an SDP offer or
answer of ~2.5 KB, then ICE candidates: one SDP in eight messages) as fast as the server
carries them, for a fixed time. Each direction of a pair keeps one message in flight: the next
leaves when the peer has received the last, so the latency is the relay's own (client send to
peer receive) and the rate is what the server carries at that concurrency.

The same load goes, in the same run, to:

- ``server-redis``: the service as deployed (``python -m secureconnect.server``: uvicorn on uvloop
  and httptools with the service's limits, the pub/sub channel layer
  ``signaling.layers.PubSubChannelLayer``);
- ``daphne-redis``: the same command with ``SERVER_IMPLEMENTATION=daphne``;
- ``daphne-memory``: that with the in-memory layer (what Redis costs);
- ``uvicorn-redis``: the same ASGI application under uvicorn's own command line, without the
  service's limits (what they cost);
- ``floor``: ``bench/floor_relay.py``, the same routing written directly on websockets;

and, when asked for (``--variants``):

- ``daphne-core``: the service on channels_redis's core layer (``CHANNEL_LAYER_BACKEND=core``),
  the layer before issue 16;
- ``server-redis-x2``: two service processes (the production command), every caller on one and
  every callee on the other (each message crosses Redis between processes);
- ``daphne-redis-x2``: the same under daphne.

``--rate R`` paces each pair at R messages a second (R/2 each way, open loop: a message leaves
on time whether or not the last has arrived) instead of saturating; then every message carries a
sequence number and is counted lost (not received within 10 s), duplicated (received twice) or
misrouted (received by a socket of another pair).

    .venv-test/bin/python -m bench.relay                # N = 10, 100, 500; 10 s each
    .venv-test/bin/python -m bench.relay --pairs 10 100 --duration 5 --variants server-redis daphne-redis floor
    .venv-test/bin/python -m bench.relay --pairs 100 --rate 10 --variants server-redis daphne-core floor
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import re
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.common import METRICS_TOKEN, REDIS_URL, arg_parser, latency_summary, print_table, ratio, write_results
from bench.services import (
    BenchDatabase,
    Server,
    cpu_seconds,
    raise_open_files_limit,
    redis_cpu_seconds,
    redis_delete_own_keys,
)

VARIANTS = ("server-redis", "daphne-redis", "daphne-memory", "uvicorn-redis", "floor")
EXTRA_VARIANTS = ("daphne-core", "server-redis-x2", "daphne-redis-x2")
PRODUCT = "server-redis"
PATH = "/v1/calls/ws/signaling"
RELAYED = frozenset({"offer", "answer", "ice_candidate"})
CONNECT_CONCURRENCY = 50
MESSAGE_TIMEOUT = 10.0  # a message not relayed within this is counted lost
WARMUP = 1.0
SEQ_MARK = "424242"  # replaced by a sequence number in paced runs (the SDP's o= line, the candidate's foundation)
SEQ = re.compile(r"(?:o=- |candidate:)(\d+) ")


def sdp(kind: str) -> str:
    """A video+audio SDP of realistic size (~2.5 KB), as a browser would send it."""
    lines = [
        "v=0",
        f"o=- {SEQ_MARK} 2 IN IP4 127.0.0.1",
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
            "candidate": f"candidate:{SEQ_MARK} 1 udp 1677729535 198.51.100.{n + 1} {50000 + n} typ srflx "
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


@dataclass
class Paced:
    """Every message of a paced run, by sequence number, until its receiver has it."""

    pending: dict[int, tuple[object, float]] = field(default_factory=dict)  # seq -> (receiver, sent)
    received: set[int] = field(default_factory=set)
    duplicated: int = 0
    misrouted: int = 0
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))


async def paced_reader(endpoint: Endpoint, window: Window, paced: Paced) -> None:
    try:
        async for raw in endpoint.ws:
            received = time.perf_counter()
            match = SEQ.search(raw)
            if match is None:
                if json.loads(raw).get("type") == "error":
                    window.errors.append(raw[:200])
                continue
            seq = int(match.group(1))
            entry = paced.pending.pop(seq, None)
            if entry is None:
                paced.duplicated += seq in paced.received
                continue
            paced.received.add(seq)
            receiver, sent = entry
            if receiver is not endpoint:
                paced.misrouted += 1
            elif window.start <= sent < window.end:
                window.latencies.append(received - sent)
    except ConnectionClosed:
        pass


async def paced_driver(sender: Endpoint, receiver: Endpoint, role: str, window: Window, paced: Paced, interval: float):
    loop = asyncio.get_running_loop()
    sequence = frames(role)
    n = 0
    next_at = loop.time() + random.uniform(0, interval)
    while not window.stop:
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        next_at += interval
        seq = next(paced.counter)
        paced.pending[seq] = (receiver, time.perf_counter())
        try:
            await sender.ws.send(sequence[n % len(sequence)].replace(SEQ_MARK, str(seq)))
        except ConnectionClosed as exc:
            window.errors.append(f"closed: {exc}")
            return
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


async def measure(servers: list[Server], pairs, duration: float, uses_redis: bool, rate: float = 0.0) -> dict:
    """Callers on ``servers[0]``, callees on ``servers[-1]`` (the same server, or two). ``rate``:
    messages a second per pair, paced; 0: saturated (one message in flight each way)."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    opened = time.perf_counter()
    sockets = await asyncio.gather(
        *[
            open_socket(server.ws_url, p.call_id, person.token, gate)
            for p in pairs
            for server, person in ((servers[0], p.caller), (servers[-1], p.callee))
        ]
    )
    connect_seconds = time.perf_counter() - opened
    window = Window()
    paced = Paced() if rate else None
    endpoints = [Endpoint(ws) for ws in sockets]
    if paced is None:
        readers = [asyncio.create_task(reader(e, window)) for e in endpoints]
    else:
        readers = [asyncio.create_task(paced_reader(e, window, paced)) for e in endpoints]
    await asyncio.sleep(min(WARMUP, 0.5))  # participants and join messages go by
    drivers = []
    for n in range(len(pairs)):
        caller, callee = endpoints[2 * n], endpoints[2 * n + 1]
        if paced is None:
            drivers.append(asyncio.create_task(driver(caller, callee, "caller", window)))
            drivers.append(asyncio.create_task(driver(callee, caller, "callee", window)))
        else:
            interval = 2.0 / rate  # each direction carries half of the pair's rate
            drivers.append(asyncio.create_task(paced_driver(caller, callee, "caller", window, paced, interval)))
            drivers.append(asyncio.create_task(paced_driver(callee, caller, "callee", window, paced, interval)))
    await asyncio.sleep(WARMUP)
    pids = [server.process.pid for server in servers]
    server_cpu, redis_cpu, client_cpu = sum(map(cpu_seconds, pids)), redis_cpu_seconds(), time.process_time()
    window.start = time.perf_counter()
    await asyncio.sleep(duration)
    window.end = time.perf_counter()
    server_cpu = sum(map(cpu_seconds, pids)) - server_cpu
    redis_cpu = redis_cpu_seconds() - redis_cpu
    client_cpu = time.process_time() - client_cpu
    window.stop = True
    await asyncio.wait(drivers, timeout=MESSAGE_TIMEOUT + 5)
    if paced is not None:
        deadline = time.perf_counter() + MESSAGE_TIMEOUT
        while time.perf_counter() < deadline and any(window.start <= t < window.end for _, t in paced.pending.values()):
            await asyncio.sleep(0.1)
        window.lost = sum(window.start <= t < window.end for _, t in paced.pending.values())
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
        "duplicated": paced.duplicated if paced else 0,
        "misrouted": paced.misrouted if paced else 0,
        "offered_per_s": rate * len(pairs) if rate else None,
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


def uses_redis(variant: str) -> bool:
    return variant.split("-")[1:2] in (["redis"], ["core"])


def make_servers(variant: str, database: BenchDatabase, log_dir: Path) -> list[Server]:
    """The processes of a variant (two for ``-x2``: one channel-layer prefix, one database)."""
    # One service process per server; a closed socket's grace (its holder, then the lifecycle's
    # check) over in a second, so that the next N does not connect while 2N holders settle.
    env = {"DATABASE_URL": database.url, "SERVER_WORKERS": "1", "CALL_RECONNECT_GRACE": "1"}
    if uses_redis(variant):
        env |= {"REDIS_URL": REDIS_URL, "CHANNEL_LAYER_PREFIX": f"bench-relay-{uuid.uuid4().hex[:8]}"}
    if variant.split("-")[1:2] == ["core"]:
        env["CHANNEL_LAYER_BACKEND"] = "core"
    if variant == "floor":
        argv = [sys.executable, "-m", "bench.floor_relay"]
        return [Server(kind="floor", env={}, log_path=log_dir / "floor.log", argv=argv)]
    count = 2 if variant.endswith("-x2") else 1
    return [
        Server(
            kind=variant.split("-")[0],
            env={**env, "SPOOL_PATH": str(log_dir / f"spool-{variant}-{n}.sqlite3")},
            log_path=log_dir / f"{variant}-{n}.log",
        )
        for n in range(count)
    ]


def run(pair_counts: list[int], duration: float, variants: list[str], log_dir: Path, rate: float = 0.0) -> dict:
    from bench.data import close_connections, make_pairs, setup_django

    database = BenchDatabase("relay").create()
    runs = []
    try:
        setup_django(database.url)
        for variant in variants:
            # Calls of its own for each variant: a socket that closes leaves its call to the
            # lifecycle (the grace, then connection_lost), so the next variant's sockets would
            # find ended calls (4409) or resume into them.
            pools = {n: make_pairs(n, label="relay", with_calls=True) for n in pair_counts}
            close_connections()
            servers = []
            try:
                for server in make_servers(variant, database, log_dir):
                    servers.append(server.start(health_path=None if variant == "floor" else "/health"))
                for n in pair_counts:
                    time.sleep(3 if variant != "floor" else 0)  # the previous N's graces end
                    result = asyncio.run(measure(servers, pools[n], duration, uses_redis(variant), rate))
                    result = {"variant": variant, **result}
                    if variant != "floor":
                        result["layer_drops"] = sum(dropped_messages(server) for server in servers)
                    runs.append(result)
                    print(
                        f"  {variant:16} N={n:4}: {result['messages_per_s']:9.1f} msg/s  "
                        f"p50 {result['p50_ms']:7.2f} ms  p99 {result['p99_ms']:7.2f} ms  lost {result['lost']}"
                        f"  dup {result['duplicated']}  misrouted {result['misrouted']}",
                        flush=True,
                    )
            except BaseException:
                for server in servers:  # why the server refused, before its log goes with the run's folder
                    print(f"--- {variant} log (last 3000 characters) ---\n{server.log_text()[-3000:]}", flush=True)
                raise
            finally:
                for server in servers:
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
    parser.add_argument("--variants", nargs="+", choices=VARIANTS + EXTRA_VARIANTS, default=list(VARIANTS))
    parser.add_argument("--rate", type=float, default=0.0, help="messages a second per pair, paced (0: saturated)")
    args = parser.parse_args(argv)
    if args.smoke:
        global WARMUP
        args.pairs, args.duration, WARMUP = [2], 0.5, 0.2
    raise_open_files_limit()
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        data = run(args.pairs, args.duration, args.variants, Path(tmp), args.rate)
    by_ratio = {(r["variant"], r["pairs"]): r for r in data["ratios"]}
    print_table(
        "Signaling relay: messages relayed per second and one-way latency",
        [
            "variant",
            "N pairs",
            "msg/s",
            "p50 ms",
            "p99 ms",
            "lost",
            "dup",
            "misrouted",
            "vs floor",
            "server CPU %",
            "redis CPU %",
        ],
        [
            [
                r["variant"],
                r["pairs"],
                r["messages_per_s"],
                r["p50_ms"],
                r["p99_ms"],
                r["lost"],
                r["duplicated"],
                r["misrouted"],
                f"{by_ratio[(r['variant'], r['pairs'])]['throughput_vs_floor']}x",
                r["server_cpu_pct"],
                r["redis_cpu_pct"],
            ]
            for r in data["runs"]
        ],
    )
    config = {
        "pairs": args.pairs,
        "duration_s": args.duration,
        "rate_per_pair": args.rate,
        "variants": args.variants,
        "smoke": args.smoke,
    }
    write_results("relay", {"config": config, **data}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
