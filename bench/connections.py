"""Benchmark 4: idle WebSocket connections on one service process (the production server; ``--server``).

Opens idle events sockets (``/v1/ws/events``, one user each, the Redis layer as deployed) up to
1,000 and then 5,000, and reports the server's resident memory per connection (RSS delta /
connections) and the time to open them. The same counts go to the floor relay
(bench/floor_relay.py, plain websockets) for comparison. Limits are raised for the run:
``WS_MAX_EVENTS_CONNECTIONS``, and the open-files limit of both processes (``ulimit -n``).

    .venv-test/bin/python -m bench.connections              # 1,000 and 5,000 connections
    .venv-test/bin/python -m bench.connections --counts 1000 2000
    .venv-test/bin/python -m bench.connections --server uvicorn   # bench/results/connections_uvicorn.json
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
import uuid
from pathlib import Path

from websockets.asyncio.client import connect

from bench.common import JWT_SECRET, REDIS_URL, arg_parser, print_table, ratio, write_results
from bench.services import BenchDatabase, Server, raise_open_files_limit, redis_delete_own_keys

OPEN_CONCURRENCY = 100
SETTLE = 2.0  # seconds for the server to finish the handshakes' work before RSS is read (0.3 in a smoke run)


def tokens(count: int) -> list[str]:
    """Access tokens of ``count`` distinct users (the events socket needs no database row)."""
    import jwt

    now = int(time.time())
    out = []
    for _ in range(count):
        user_id = str(uuid.uuid4())
        claims = {
            "user_id": user_id,
            "sub": user_id,
            "email": f"{user_id[:8]}@bench.test",
            "username": user_id[:8],
            "role": "user",
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": now + 3600,
            "aud": "secureconnect-api",
            "iss": "secureconnect-auth",
            "type": "access",
        }
        out.append(jwt.encode(claims, JWT_SECRET, algorithm="HS256"))
    return out


async def open_many(url_for, tokens_: list[str]) -> tuple[list, float, int]:
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)
    failures = 0

    async def one(n, token):
        nonlocal failures
        async with gate:
            try:
                return await connect(
                    url_for(n),
                    additional_headers={"Authorization": f"Bearer {token}"},
                    proxy=None,
                    compression=None,
                    open_timeout=60,
                    ping_interval=None,
                )
            except Exception:
                failures += 1
                return None

    started = time.perf_counter()
    sockets = await asyncio.gather(*[one(n, t) for n, t in enumerate(tokens_)])
    return [s for s in sockets if s is not None], time.perf_counter() - started, failures


async def drain_first_messages(sockets) -> int:
    """Read what the server sent on connect (the floor's participants message); refused sockets
    would show an error here. Returns how many sockets are still open."""
    alive = 0
    for ws in sockets:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.001)
        alive += ws.state.name == "OPEN"
    return alive


async def measure(server: Server, counts: list[int], path_for) -> list[dict]:
    def url_for(n):
        return f"{server.ws_url}{path_for(n)}"

    warm, _, _ = await open_many(url_for, tokens(20))  # first sockets import and cache code paths
    for ws in warm:
        await ws.close()
    await asyncio.sleep(SETTLE)
    baseline = server.rss_bytes()
    opened, steps = [], []
    all_tokens = tokens(max(counts))
    for count in sorted(counts):
        new, seconds, failures = await open_many(url_for, all_tokens[len(opened) : count])
        opened += new
        await asyncio.sleep(SETTLE)
        alive = await drain_first_messages(opened)
        rss = server.rss_bytes()
        steps.append(
            {
                "connections": count,
                "open": alive,
                "failed": failures + (len(opened) - alive),
                "open_s": round(seconds, 2),
                "opened_per_s": round(len(new) / seconds, 1) if seconds else None,
                "rss_baseline_mib": round(baseline / 2**20, 1),
                "rss_mib": round(rss / 2**20, 1),
                "kib_per_connection": round((rss - baseline) / 1024 / count, 1),
            }
        )
        print(
            f"  {count:5} sockets: opened {len(new)} in {seconds:.2f} s, RSS {rss / 2**20:.1f} MiB "
            f"(+{(rss - baseline) / 1024 / count:.1f} KiB each), failures {steps[-1]['failed']}",
            flush=True,
        )
    await asyncio.gather(*[asyncio.wait_for(ws.close(), 10) for ws in opened], return_exceptions=True)
    return steps


def run(counts: list[int], log_dir: Path, server_kind: str = "server") -> dict:
    database = BenchDatabase("connections").create()
    results = {}
    try:
        server = Server(
            env={
                "DATABASE_URL": database.url,
                "REDIS_URL": REDIS_URL,
                "CHANNEL_LAYER_PREFIX": f"bench-connections-{uuid.uuid4().hex[:8]}",
                "SPOOL_PATH": str(log_dir / "spool.sqlite3"),
            },
            log_path=log_dir / f"{server_kind}.log",
            kind=server_kind,
        ).start()
        try:
            limit = server.open_files_limit()
            print(f"{server_kind} (pid {server.process.pid}), open-files limit {limit}")
            results[server_kind] = asyncio.run(measure(server, counts, lambda n: "/v1/ws/events"))
        finally:
            server.stop()
        floor = Server(
            kind="floor", env={}, log_path=log_dir / "floor.log", argv=[sys.executable, "-m", "bench.floor_relay"]
        ).start(health_path=None)
        try:
            print(f"floor relay (pid {floor.process.pid})")
            call_ids = [uuid.uuid4() for _ in range(max(counts) // 2 + 1)]
            results["floor"] = asyncio.run(
                measure(floor, counts, lambda n: f"/v1/calls/ws/signaling?call_id={call_ids[n // 2]}")
            )
        finally:
            floor.stop()
    finally:
        database.drop()
        redis_delete_own_keys()
    comparison = [
        {
            "connections": d["connections"],
            "memory_vs_floor": ratio(d["kib_per_connection"], f["kib_per_connection"]),
            "open_time_vs_floor": ratio(d["open_s"], f["open_s"]),
        }
        for d, f in zip(results[server_kind], results["floor"], strict=True)
    ]
    return {"open_files_limit": limit, "servers": results, "ratios": comparison}


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument(
        "--server",
        choices=("server", "daphne", "uvicorn"),
        default="server",
        help="server: the production command (python -m secureconnect.server, uvicorn); daphne: the same "
        "command with SERVER_IMPLEMENTATION=daphne; uvicorn: uvicorn's own command line",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        global SETTLE
        args.counts, SETTLE = [20, 50], 0.3
    limit = raise_open_files_limit()
    if limit < max(args.counts) + 100:
        parser.error(f"the open-files limit is {limit}; {max(args.counts)} connections need more (ulimit -Hn)")
    with tempfile.TemporaryDirectory(prefix="bench-connections-") as tmp:
        data = run(args.counts, Path(tmp), args.server)
    rows = []
    for name, steps in data["servers"].items():
        for s in steps:
            keys = ("connections", "open", "failed", "open_s", "opened_per_s", "rss_mib", "kib_per_connection")
            rows.append([name, *(s[k] for k in keys)])
    print_table(
        "Idle WebSocket connections on one process (RSS delta / connections)",
        ["server", "connections", "open", "failed", "open s", "opened/s", "RSS MiB", "KiB/connection"],
        rows,
    )
    name = "connections" if args.server == "server" else f"connections_{args.server}"
    config = {"counts": args.counts, "smoke": args.smoke, "server": args.server}
    write_results(name, {"config": config, **data}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
