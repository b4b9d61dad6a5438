"""Drill (c): kill -9 of the service while it journals calls in limited mode, then a restart.

The database is reached through a loopback proxy. With the database up the clients start (so
each conversation's members are in the shared snapshot cache), then the database goes away and
the service journals every call write in its spool (``meta.persistence: deferred``). In the
middle of that load the service process is killed with SIGKILL (no shutdown code runs) and
started again on the same port and spool, still without a database; the load goes on. Then the
database returns: the spool must replay, and every write a client was told about must be in
the database, exactly once. Requests in flight at the kill have no answer and count as failed.

    .venv-test/bin/python -m bench.drills.kill_restart               # production start-up backoff
    .venv-test/bin/python -m bench.drills.kill_restart --limited 20
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bench.common import arg_parser, write_results
from bench.drills.common import (
    CallLoad,
    check_calls,
    drill_setup,
    prime_members,
    ready_body,
    replayed_log_lines,
    seconds_until_ready,
    verdict,
)
from bench.services import Server
from bench.tcp_proxy import TcpProxy


async def drill(server: Server, restart, proxy: TcpProxy, pairs, args) -> dict:
    await prime_members(server, pairs)
    load = CallLoad(server, pairs)
    load.start()
    await asyncio.sleep(args.before)
    proxy.down()
    print(f"  database down at {time.strftime('%X')}", flush=True)
    await asyncio.sleep(args.limited / 2)
    deferred_before_kill = load.ledger.deferred
    spool_before_kill = (await ready_body(server)).get("spool_depth")
    server.kill()
    killed = time.monotonic()
    print(f"  service killed (SIGKILL) at {time.strftime('%X')} with {spool_before_kill} journaled writes", flush=True)
    await asyncio.to_thread(restart)
    restarted_after = round(time.monotonic() - killed, 2)
    print(f"  service serving again after {restarted_after} s", flush=True)
    await asyncio.sleep(args.limited / 2)
    spool_before_return = (await ready_body(server)).get("spool_depth")
    proxy.up()
    returned = time.monotonic()
    print(f"  database back at {time.strftime('%X')} with {spool_before_return} journaled writes", flush=True)
    ready_after = await seconds_until_ready(server, returned, args.ready_timeout)
    await load.stop()
    ready_after_load = await seconds_until_ready(server, time.monotonic(), args.ready_timeout)
    spool_after = (await ready_body(server)).get("spool_depth")
    return {
        "ledger": load.ledger,
        "deferred_before_kill": deferred_before_kill,
        "spool_depth_at_kill": spool_before_kill,
        "restart_serving_after_s": restarted_after,
        "spool_depth_before_database_returned": spool_before_return,
        "ready_again_after_s": ready_after,
        "ready_after_load_stopped_s": ready_after_load,
        "spool_depth_at_end": spool_after,
    }


def run(args, log_dir: Path) -> dict:
    from bench.data import close_connections

    with drill_setup("kill", clients=args.clients, log_dir=log_dir, env=args.env) as setup:
        first = Server(env={**setup.env, "DB_STARTUP_MODE": "blocking"}, log_path=log_dir / "server-1.log").start()
        second = Server(env=setup.env, log_path=log_dir / "server-2.log", port=first.port)
        try:
            outcome = asyncio.run(drill(first, lambda: second.start(), setup.proxy, setup.pairs, args))
            log = second.log_tail(500_000)
        finally:
            first.kill()
            second.stop()
        ledger = outcome.pop("ledger")
        calls = check_calls(ledger)
        close_connections()
    counts = {**ledger.counts(), **outcome, **calls, "replayed_log_lines": replayed_log_lines(log)}
    passed = (
        calls["calls_acknowledged"] > 0
        and calls["missing"] == 0
        and calls["state_behind_acknowledged"] == 0
        and calls["wrong_participant_count"] == 0
        and (outcome["spool_depth_at_kill"] or 0) > 0
        and (outcome["spool_depth_before_database_returned"] or 0) > 0
        # A smoke run proves the drill works, not the recovery (docs/benchmarks.md, finding 1).
        and (
            outcome["ready_again_after_s"] is not None
            or (args.smoke and outcome["ready_after_load_stopped_s"] is not None)
        )
        and outcome["spool_depth_at_end"] == 0
        and ledger.server_errors == 0
    )
    return {"passed": passed, "counts": counts}


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--limited", type=float, default=20.0, help="seconds of load in limited mode (kill halfway)")
    parser.add_argument("--before", type=float, default=3.0, help="seconds of load before the database goes")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--ready-timeout", type=float, default=120.0)
    parser.add_argument("--logs", type=Path, help="keep the service's logs in this folder")
    args = parser.parse_args(argv)
    args.env = []
    if args.smoke:
        args.limited, args.before, args.clients, args.ready_timeout = 3.0, 1.0, 3, 15.0
        args.env = [
            ("DB_CONNECT_MAX_TRIES", "2"),
            ("DB_CONNECT_BASE_DELAY", "0.2"),
            ("DB_PROBE_MAX_DELAY", "0.5"),
            ("DB_CONNECT_TIMEOUT", "2"),
        ]
    with tempfile.TemporaryDirectory(prefix="bench-drill-kill-") as tmp:
        result = run(args, args.logs or Path(tmp))
    verdict("Drill (c) kill -9 in limited mode, restart, replay", result["passed"], result["counts"])
    config = {"limited_s": args.limited, "clients": args.clients, "smoke": args.smoke}
    write_results("drill_kill_restart", {"config": config, **result}, args.out)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
