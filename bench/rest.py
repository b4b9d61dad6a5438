"""Benchmark 2: the call lifecycle over REST, on PostgreSQL.

C concurrent clients (asyncio, in this process; the service is another process), each with a
conversation of its own (a conversation holds one live call at a time), loop for a fixed time:
the caller ``POST /v1/calls/initiate``, the callee ``POST /v1/calls/{id}/join``, the caller
``POST /v1/calls/{id}/end``. Then the same clients do the same against the floor: plain Django
views that write the same rows with no framework layers on top (bench/floor_views.py), served
by the same server process (the production command) through a bench-only URLconf (bench/floor_settings.py).

    .venv-test/bin/python -m bench.rest                   # 10 and 50 clients, 15 s each
    .venv-test/bin/python -m bench.rest --clients 10 --duration 5
    .venv-test/bin/python -m bench.rest --server daphne   # the same under daphne (bench/results/rest_daphne.json)
    .venv-test/bin/python -m bench.rest --pool-size 0     # a new database connection per request
    .venv-test/bin/python -m bench.rest --workers 1       # one server process (default: one per core)
    .venv-test/bin/python -m bench.rest --breakdown       # what each request sends (SQL, Redis), no timing

Product and floor share the server, so they share its worker count (SERVER_WORKERS, one per core
unless --workers says otherwise) and its connection settings: DB_POOL_MAX_SIZE (default 10
connections per process, secureconnect/db/pool.py) unless --pool-size says otherwise.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

from bench.common import REDIS_URL, Deadline, arg_parser, latency_summary, print_table, ratio, write_results
from bench.http import HttpConnection
from bench.services import BenchDatabase, CpuMeter, Server, raise_open_files_limit, redis_client, redis_delete_own_keys
from core.cache import delete_matching

ENDPOINTS = ("initiate", "join", "end")
WARMUP = 1.0


def product_steps(pair):
    """(endpoint, method, path or path template, who, body, expected status)."""
    initiate = {"call_type": "video", "conversation_id": pair.conversation_id, "callee_ids": [pair.callee.id]}
    return [
        ("initiate", "/v1/calls/initiate", pair.caller.token, initiate, 201),
        ("join", "/v1/calls/{id}/join", pair.callee.token, None, 200),
        ("end", "/v1/calls/{id}/end", pair.caller.token, None, 200),
    ]


def floor_steps(pair):
    initiate = {"call_type": "video", "conversation_id": pair.conversation_id, "callee_ids": [pair.callee.id]}
    return [
        ("initiate", "/bench/floor/initiate", pair.caller.token, initiate, 201),
        ("join", "/bench/floor/{id}/join", pair.callee.token, None, 200),
        ("end", "/bench/floor/{id}/end", pair.caller.token, None, 200),
    ]


def call_id_of(body: bytes) -> str:
    data = json.loads(body)
    return data["data"]["call_id"] if "data" in data else data["call_id"]


async def client(server: Server, steps, deadline: Deadline, record_after: float, stats: dict) -> None:
    """One client: initiate, join, end, again, until the deadline (a cycle once begun is finished)."""
    connection = HttpConnection("127.0.0.1", server.port)
    try:
        while deadline:
            call_id = None
            for endpoint, path, token, body, expected in steps:
                if "{id}" in path and call_id is None:
                    break
                started = time.perf_counter()
                try:
                    status, payload = await connection.request(
                        "POST", path.format(id=call_id), json_body=body if body is not None else {}, token=token
                    )
                except (ConnectionError, TimeoutError) as exc:
                    status, payload = 0, str(exc).encode()
                elapsed = time.perf_counter() - started
                if started >= record_after:
                    stats[endpoint]["latencies"].append(elapsed)
                if status != expected:
                    stats[endpoint]["errors"] += 1
                    stats[endpoint]["samples"].append(f"{status} {payload[:200]!r}")
                    break
                if endpoint == "initiate":
                    call_id = call_id_of(payload)
                    stats["calls"].append(call_id)
    finally:
        await connection.close()


async def load(
    server: Server,
    pairs,
    steps_for,
    duration: float,
    stats=None,
    cpu: dict | None = None,
    meter: CpuMeter | None = None,
) -> tuple[dict, float]:
    """Run the clients for ``duration`` (after a warm-up), adding to ``stats`` (and, given a
    ``meter``, the CPU seconds spent after the warm-up to ``cpu``); the seconds measured."""
    if stats is None:
        stats = new_stats()
    started = time.perf_counter()
    deadline = Deadline(WARMUP + duration)

    async def after_warmup():
        await asyncio.sleep(WARMUP)
        return meter.sample()

    sampled = asyncio.ensure_future(after_warmup()) if meter is not None else None
    await asyncio.gather(*[client(server, steps_for(p), deadline, started + WARMUP, stats) for p in pairs])
    if sampled is not None:
        for group, seconds in CpuMeter.seconds_between(await sampled, meter.sample()).items():
            cpu[group] = cpu.get(group, 0.0) + seconds
    return stats, time.perf_counter() - started - WARMUP


def new_stats():
    stats = defaultdict(lambda: {"latencies": [], "errors": 0, "samples": []})
    stats["calls"] = []
    return stats


def summary_of(stats, measured: float) -> dict:
    endpoints = {}
    for endpoint in ENDPOINTS:
        summary = latency_summary(stats[endpoint]["latencies"])
        endpoints[endpoint] = {
            "requests": summary["count"],
            "rps": round(summary["count"] / measured, 1),
            "p50_ms": summary["p50_ms"],
            "p99_ms": summary["p99_ms"],
            "max_ms": summary["max_ms"],
            "errors": stats[endpoint]["errors"],
            "error_samples": stats[endpoint]["samples"][:3],
        }
    total = sum(e["requests"] for e in endpoints.values())
    return {
        "duration_s": round(measured, 2),
        "requests_per_s": round(total / measured, 1),
        "errors": sum(e["errors"] for e in endpoints.values()),
        "endpoints": endpoints,
        "call_ids": stats["calls"],
    }


def run(
    client_counts: list[int],
    duration: float,
    log_dir: Path,
    server_kind: str = "server",
    pool_size: int | None = None,
    rounds: int = 3,
    workers: int = 1,
) -> dict:
    from bench.data import close_connections, make_pairs, setup_django

    database = BenchDatabase("rest").create()
    runs = []
    try:
        setup_django(database.url)
        pairs = make_pairs(max(client_counts), label="rest")
        from calls.models import Call

        close_connections()
        server = Server(
            env={
                "DJANGO_SETTINGS_MODULE": "bench.floor_settings",
                "DATABASE_URL": database.url,
                "REDIS_URL": REDIS_URL,
                "CHANNEL_LAYER_PREFIX": f"bench-rest-{uuid.uuid4().hex[:8]}",
                "SPOOL_PATH": str(log_dir / "spool.sqlite3"),
                "DB_STARTUP_MODE": "blocking",
                "SERVER_WORKERS": str(workers),
                **({} if pool_size is None else {"DB_POOL_MAX_SIZE": str(pool_size)}),
            },
            log_path=log_dir / f"{server_kind}.log",
            kind=server_kind,
        ).start()
        try:
            variants = (("product", product_steps), ("floor", floor_steps))
            for clients in client_counts:
                # Product and floor take turns (``rounds`` slices each), so a machine whose load
                # changes during the run weighs on both alike.
                measured = {variant: [new_stats(), 0.0, {}] for variant, _ in variants}
                meter = CpuMeter(server.process.pid, database.name)
                for _ in range(rounds):
                    for variant, steps_for in variants:
                        stats, _, cpu = measured[variant]
                        _, seconds = asyncio.run(
                            load(server, pairs[:clients], steps_for, duration / rounds, stats, cpu, meter)
                        )
                        measured[variant][1] += seconds
                for variant, _ in variants:
                    result = summary_of(*measured[variant][:2])
                    requests = sum(e["requests"] for e in result["endpoints"].values())
                    result["cpu_ms_per_request"] = {
                        group: round(1000 * seconds / requests, 3) if requests else None
                        for group, seconds in measured[variant][2].items()
                    }
                    call_ids = result.pop("call_ids")
                    stored = Call.objects.filter(pk__in=call_ids).count()
                    close_connections()
                    result = {
                        "variant": variant,
                        "clients": clients,
                        "rounds": rounds,
                        **result,
                        "calls_initiated": len(call_ids),
                    }
                    result["calls_missing_in_db"] = len(set(call_ids)) - stored
                    runs.append(result)
                    e = result["endpoints"]
                    print(
                        f"  {variant:8} C={clients:3}: {result['requests_per_s']:7.1f} req/s  "
                        + "  ".join(f"{n} p50 {e[n]['p50_ms']:.1f}/p99 {e[n]['p99_ms']:.1f} ms" for n in ENDPOINTS)
                        + f"  errors {result['errors']}  CPU ms/request "
                        + " ".join(f"{g} {v}" for g, v in result["cpu_ms_per_request"].items()),
                        flush=True,
                    )
        finally:
            server.stop()
    finally:
        close_connections()
        database.drop()
        redis_delete_own_keys()
    return {"runs": runs, "ratios": ratios(runs, client_counts)}


def ratios(runs, client_counts) -> list[dict]:
    by = {(r["variant"], r["clients"]): r for r in runs}
    out = []
    for clients in client_counts:
        product, floor = by[("product", clients)], by[("floor", clients)]
        row = {"clients": clients, "throughput_vs_floor": ratio(product["requests_per_s"], floor["requests_per_s"])}
        # The floor's CPU per request over the product's (service, its PostgreSQL backends, Redis):
        # the throughput ratio a CPU-bound machine would show, blurred less by other load.
        cpu = [sum(v for v in run.get("cpu_ms_per_request", {}).values() if v) for run in (floor, product)]
        row["cpu_per_request_vs_floor"] = ratio(*cpu) if all(cpu) else None
        for endpoint in ENDPOINTS:
            row[f"{endpoint}_p50_vs_floor"] = ratio(
                product["endpoints"][endpoint]["p50_ms"], floor["endpoints"][endpoint]["p50_ms"]
            )
        out.append(row)
    return out


def breakdown(cycles: int = 3) -> dict:
    """What each endpoint sends to PostgreSQL and Redis, product and floor, counted in this
    process (Django's test client, the service's settings, Redis for the cache): SQL statements
    by verb and the round trips they took (several statements sent at once are one,
    ``core.compiled_sql.one_round_trip``), and Redis commands by name, per request. Counts, not
    timings, so a loaded machine does not blur them. The events published after commit leave through the signaling app's
    background loop (``signaling/call_events.py``), so their channel-layer commands are not counted."""
    import os
    from collections import Counter

    from bench.common import JWT_SECRET

    database = BenchDatabase("restcount").create()
    prefix = f"bench-rest-count-{uuid.uuid4().hex[:8]}"
    os.environ.update(
        DJANGO_SETTINGS_MODULE="bench.floor_settings",
        DATABASE_URL=database.url,
        JWT_SECRET=JWT_SECRET,
        REDIS_URL=REDIS_URL,
        CACHE_KEY_PREFIX=prefix,
        CHANNEL_LAYER_PREFIX=prefix,
        DB_STARTUP_MODE="off",
        PUSH_PROVIDER="none",
        LOG_LEVEL="WARNING",
        THROTTLE_USER="1000000/min",
        THROTTLE_CALL_INITIATE="1000000/min",
        ALLOWED_HOSTS="*",
    )
    import django

    django.setup()
    import redis.client
    import redis.connection
    from django.db import connection, connections
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from bench.data import make_pairs
    from calls.persistence import availability
    from core.compiled_sql import statements_in

    availability.transition(availability.OPERATIONAL)
    sent: Counter = Counter()
    original = redis.connection.AbstractConnection.send_command

    def counting_send_command(self, *args, **kwargs):
        sent[str(args[0]).upper()] += 1
        return original(self, *args, **kwargs)

    original_pipeline = redis.client.Pipeline.execute

    def counting_pipeline(self, *args, **kwargs):  # one round trip, its commands sent packed
        sent[f"PIPELINE({'+'.join(str(c[0][0]).upper() for c in self.command_stack)})"] += 1
        return original_pipeline(self, *args, **kwargs)

    redis.connection.AbstractConnection.send_command = counting_send_command
    redis.client.Pipeline.execute = counting_pipeline
    out: dict = {}
    try:
        pairs = make_pairs(cycles, label="count")
        client = Client()
        for variant, steps_for in (("product", product_steps), ("floor", floor_steps)):
            totals = {e: {"sql": Counter(), "redis": Counter()} for e in ENDPOINTS}
            for pair in pairs:
                call_id = None
                for endpoint, path, token, body, expected in steps_for(pair):
                    sent.clear()
                    with CaptureQueriesContext(connection) as queries:
                        response = client.post(
                            path.format(id=call_id),
                            json.dumps(body if body is not None else {}),
                            content_type="application/json",
                            HTTP_AUTHORIZATION=f"Bearer {token}",
                        )
                    if response.status_code != expected:
                        raise RuntimeError(f"{variant} {endpoint}: {response.status_code} {response.content[:200]!r}")
                    call_id = call_id or call_id_of(response.content)
                    trips = [statements_in(q["sql"]) for q in queries.captured_queries]
                    totals[endpoint]["sql"].update(sql.split()[0].upper().lstrip("(") for trip in trips for sql in trip)
                    totals[endpoint]["sql"]["(round trips)"] += len(trips)
                    totals[endpoint]["redis"].update(sent)
            out[variant] = {
                e: {kind: {k: v / cycles for k, v in sorted(c.items())} for kind, c in t.items()}
                for e, t in totals.items()
            }
    finally:
        redis.connection.AbstractConnection.send_command = original
        redis.client.Pipeline.execute = original_pipeline
        connections.close_all()
        database.drop()
        client_redis = redis_client()
        try:
            delete_matching(client_redis, f"{prefix}*")
        finally:
            client_redis.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured per variant and client count")
    parser.add_argument(
        "--server",
        choices=("server", "daphne", "uvicorn"),
        default="server",
        help="server: the production command (python -m secureconnect.server, uvicorn); daphne: the same "
        "command with SERVER_IMPLEMENTATION=daphne; uvicorn: uvicorn's own command line",
    )
    parser.add_argument(
        "--pool-size",
        type=int,
        default=None,
        help="DB_POOL_MAX_SIZE of the server (0: no pool; default: the service's)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="SERVER_WORKERS of the server, product and floor alike (default: one per core, as in production)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="product and floor take turns this many times per client count"
    )
    parser.add_argument(
        "--breakdown", action="store_true", help="count what each request sends (SQL, Redis) instead of timing"
    )
    args = parser.parse_args(argv)
    if args.breakdown:
        data = breakdown()
        for variant, endpoints in data.items():
            for endpoint, sent in endpoints.items():
                sql = ", ".join(f"{k} {v:g}" for k, v in sent["sql"].items())
                rds = ", ".join(f"{k} {v:g}" for k, v in sent["redis"].items()) or "none"
                print(f"  {variant:8} {endpoint:8} SQL: {sql}  Redis: {rds}")
        write_results("rest_breakdown", {"config": {"breakdown": True}, **data}, args.out)
        return 0
    if args.smoke:
        args.clients, args.duration, args.rounds = [2], 1.0, 1
    raise_open_files_limit()
    with tempfile.TemporaryDirectory(prefix="bench-rest-") as tmp:
        data = run(args.clients, args.duration, Path(tmp), args.server, args.pool_size, args.rounds, args.workers)
    by_ratio = {r["clients"]: r for r in data["ratios"]}
    rows = []
    for r in data["runs"]:
        for endpoint in ENDPOINTS:
            e = r["endpoints"][endpoint]
            rows.append([r["variant"], r["clients"], endpoint, e["rps"], e["p50_ms"], e["p99_ms"], e["errors"], ""])
        rows[-1][-1] = f"{by_ratio[r['clients']]['throughput_vs_floor']}x" if r["variant"] == "product" else "1.0x"
    print_table(
        "Call lifecycle over REST (PostgreSQL): requests per second and latency per endpoint",
        ["variant", "clients", "endpoint", "req/s", "p50 ms", "p99 ms", "errors", "all req/s vs floor"],
        rows,
    )
    print_table(
        "CPU per request (ms): the server's processes, its PostgreSQL backends, Redis",
        ["clients", "variant", "service", "postgres", "redis", "floor's CPU / product's"],
        [
            [r["clients"], r["variant"], *(r["cpu_ms_per_request"].get(g) for g in CpuMeter.GROUPS), ""]
            if r["variant"] == "floor"
            else [
                r["clients"],
                r["variant"],
                *(r["cpu_ms_per_request"].get(g) for g in CpuMeter.GROUPS),
                f"{by_ratio[r['clients']]['cpu_per_request_vs_floor']}x",
            ]
            for r in data["runs"]
        ],
    )
    config = {
        "clients": args.clients,
        "duration_s": args.duration,
        "server": args.server,
        "pool_size": args.pool_size,
        "rounds": args.rounds,
        "workers": args.workers,
        "smoke": args.smoke,
    }
    write_results("rest" if args.server == "server" else f"rest_{args.server}", {"config": config, **data}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
