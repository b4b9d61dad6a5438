"""Benchmark 3: call history at scale.

``GET /v1/calls`` (the first page and the next one) and ``GET /v1/calls/analytics`` for one
user whose own history is the same size at every step (1,000 calls), while the table grows to
10 thousand, 100 thousand and 1 million calls (each with two participant rows) around them.
Rows are written with COPY into a database of the benchmark's own, dropped at the end unless
``--keep``. What the history page costs must not grow with the table: the 1M/10k ratio says
whether it does. At the largest size every query behind the four endpoints is EXPLAINed (the
SQL the selectors send, captured in this process): a sequential scan of ``calls_call`` or
``calls_callparticipant`` in any plan fails the run (exit status 1).

    .venv-test/bin/python -m bench.history                      # 10k, 100k, 1M calls
    .venv-test/bin/python -m bench.history --sizes 10000 100000 --keep
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import REDIS_URL, Deadline, arg_parser, latency_summary, print_table, ratio, write_results
from bench.http import HttpConnection
from bench.services import BenchDatabase, Server, redis_delete_own_keys

PROBE_CALLS = 1000
OTHER_PAIRS = 1000  # conversations of two among which the rest of the table's calls are spread
CHUNK = 100_000
MAX_SECONDS_PER_ENDPOINT = 20.0
SPAN = timedelta(days=365)
CALL_COLUMNS = (
    "id, conversation_id, caller_id, call_type, status, end_reason, started_at, answered_at, ended_at, "
    "duration_seconds, recording_url, created_at, updated_at"
)
PARTICIPANT_COLUMNS = (
    "id, call_id, user_id, role, state, joined_at, left_at, leave_reason, is_muted, is_video_on, call_started_at"
)
# (status, end reason, answered, caller state, callee state, weight)
OUTCOMES = [
    ("ended", "hangup", True, "left", "left", 60),
    ("missed", "no_answer", False, "left", "missed", 15),
    ("declined", "declined", False, "left", "declined", 10),
    ("cancelled", "cancelled", False, "left", "missed", 10),
    ("failed", "failed", True, "left", "left", 5),
]
NULL = "\\N"


class RowWriter:
    """Generates calls and their two participants as COPY text, deterministically."""

    def __init__(self, seed: int = 9):
        self.rng = random.Random(seed)
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.weights = [o[-1] for o in OUTCOMES]

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def calls(self, count: int, pairs: list[tuple[str, str, str]]) -> tuple[io.StringIO, io.StringIO]:
        """``count`` calls, each in one of ``pairs`` (conversation, caller, callee), either side calling."""
        calls, people = io.StringIO(), io.StringIO()
        rng, now, span = self.rng, self.now, int(SPAN.total_seconds())
        for _ in range(count):
            conversation, a, b = pairs[rng.randrange(len(pairs))]
            caller, callee = (a, b) if rng.random() < 0.5 else (b, a)
            status, reason, answered, caller_state, callee_state, _ = rng.choices(OUTCOMES, self.weights)[0]
            started = now - timedelta(seconds=rng.randrange(span))
            ring = rng.randrange(2, 30)
            talk = rng.randrange(5, 3600) if answered else 0
            answered_at = started + timedelta(seconds=ring) if answered else None
            ended = started + timedelta(seconds=ring + talk)
            call_id = self.uuid()
            s, a_s, e = started.isoformat(), answered_at.isoformat() if answered_at else NULL, ended.isoformat()
            calls.write(
                f"{call_id}\t{conversation}\t{caller}\t{rng.choice(('audio', 'video'))}\t{status}\t{reason}\t"
                f"{s}\t{a_s}\t{e}\t{talk}\t\t{s}\t{e}\n"
            )
            left = reason if status == "ended" else ""  # leave_reason: why a joined participant left
            people.write(f"{self.uuid()}\t{call_id}\t{caller}\tcaller\t{caller_state}\t{s}\t{e}\t{left}\tf\tt\t{s}\n")
            people.write(
                f"{self.uuid()}\t{call_id}\t{callee}\tcallee\t{callee_state}\t{a_s}\t"
                f"{e if answered else NULL}\t{left if answered else ''}\tf\tt\t{s}\n"
            )
        calls.seek(0)
        people.seek(0)
        return calls, people


def copy_calls(database: BenchDatabase, writer: RowWriter, count: int, pairs) -> None:
    conn = database.connect()
    try:
        with conn.cursor() as cur:
            left = count
            while left > 0:
                calls, people = writer.calls(min(CHUNK, left), pairs)
                cur.copy_expert(f"COPY calls_call ({CALL_COLUMNS}) FROM STDIN", calls)
                cur.copy_expert(f"COPY calls_callparticipant ({PARTICIPANT_COLUMNS}) FROM STDIN", people)
                left -= CHUNK
            cur.execute("ANALYZE calls_call")
            cur.execute("ANALYZE calls_callparticipant")
    finally:
        conn.close()


async def timed_gets(server: Server, token: str, path: str, requests: int) -> tuple[dict, bytes]:
    """``requests`` sequential GETs, or as many as fit in MAX_SECONDS_PER_ENDPOINT."""
    connection = HttpConnection("127.0.0.1", server.port, timeout=120)
    latencies, body = [], b""
    deadline = Deadline(MAX_SECONDS_PER_ENDPOINT)
    try:
        for _ in range(requests):
            if not deadline:
                break
            started = time.perf_counter()
            status, body = await connection.request("GET", path, token=token)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}: {body[:300]!r}")
    finally:
        await connection.close()
    return latency_summary(latencies), body


def measure(server: Server, token: str, requests: int) -> dict:
    first, body = asyncio.run(timed_gets(server, token, "/v1/calls?limit=20", requests))
    page = json.loads(body)["data"]
    cursor = page["next_cursor"]
    second, _ = asyncio.run(timed_gets(server, token, f"/v1/calls?limit=20&cursor={cursor}", requests))
    missed, _ = asyncio.run(timed_gets(server, token, "/v1/calls?limit=20&status=missed", requests))
    analytics, body = asyncio.run(timed_gets(server, token, "/v1/calls/analytics", requests))
    total = json.loads(body)["data"]["total"]
    return {
        "history_first_page": first,
        "history_second_page": second,
        "history_missed_filter": missed,
        "analytics": analytics,
        "page_size": len(page["calls"]),
        "probe_user_calls": total,
    }


SCANNED_TABLES = ("calls_call", "calls_callparticipant")
# Below this a sequential scan of a small table is the planner's right choice (the smoke run).
EXPLAIN_CHECKED_FROM = 100_000


def _seq_scans(node: dict) -> list[str]:
    found = []
    if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") in SCANNED_TABLES:
        found.append(node["Relation Name"])
    for child in node.get("Plans", ()):
        found += _seq_scans(child)
    return found


def explain_reads(user_id) -> dict:
    """EXPLAIN (FORMAT JSON) of each query the measured endpoints' selectors send for the probe
    user, and the sequential scans of the call tables found in those plans."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from calls import selectors

    with CaptureQueriesContext(connection) as captured:
        first = selectors.call_history(user_id=user_id, limit=20)
        selectors.call_history(user_id=user_id, limit=20, cursor=first.next_cursor)
        selectors.call_history(user_id=user_id, limit=20, status="missed")
        selectors.call_analytics(user_id=user_id)
    plans = []
    with connection.cursor() as cursor:
        for query in captured.captured_queries:
            sql = query["sql"]
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
            plan = cursor.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            root = plan[0]["Plan"]
            plans.append({"sql": sql[:300], "seq_scans": _seq_scans(root), "total_cost": root.get("Total Cost")})
    return {"queries": len(plans), "seq_scans": sorted({t for p in plans for t in p["seq_scans"]}), "plans": plans}


ENDPOINTS = {
    "history_first_page": "GET /v1/calls?limit=20",
    "history_second_page": "GET /v1/calls?cursor=...",
    "history_missed_filter": "GET /v1/calls?status=missed",
    "analytics": "GET /v1/calls/analytics",
}


def run(sizes: list[int], requests: int, keep: bool, log_dir: Path) -> dict:
    from bench.data import close_connections, make_pairs, setup_django

    database = BenchDatabase("history").create()
    steps = []
    try:
        setup_django(database.url)
        probe_pair, *others = make_pairs(1 + OTHER_PAIRS, label="hist")
        close_connections()
        writer = RowWriter()
        other_pairs = [(p.conversation_id, p.caller.id, p.callee.id) for p in others]
        probe = [(probe_pair.conversation_id, probe_pair.caller.id, probe_pair.callee.id)]
        server = Server(
            env={
                "DATABASE_URL": database.url,
                "REDIS_URL": REDIS_URL,
                "CHANNEL_LAYER_PREFIX": f"bench-history-{uuid.uuid4().hex[:8]}",
                "SPOOL_PATH": str(log_dir / "spool.sqlite3"),
                "DB_STARTUP_MODE": "blocking",
            },
            log_path=log_dir / "server.log",
        ).start()
        try:
            in_table = 0
            for size in sorted(sizes):
                started = time.perf_counter()
                if in_table == 0:
                    copy_calls(database, writer, PROBE_CALLS, probe)
                    in_table = PROBE_CALLS
                copy_calls(database, writer, size - in_table, other_pairs)
                in_table = size
                build = time.perf_counter() - started
                result = {
                    "calls_in_table": size,
                    "build_s": round(build, 1),
                    **measure(server, probe_pair.caller.token, requests),
                }
                if size == max(sizes):
                    result["explain"] = explain_reads(probe_pair.caller.id)
                    close_connections()
                steps.append(result)
                print(
                    f"  {size:>9,} calls (built in {build:5.1f} s): "
                    + "  ".join(f"{k} p50 {result[k]['p50_ms']:.1f} ms" for k in ENDPOINTS),
                    flush=True,
                )
        finally:
            server.stop()
    finally:
        close_connections()
        if keep:
            print(f"Kept database {database.name} ({database.url})")
        else:
            database.drop()
        redis_delete_own_keys()
    smallest, largest = steps[0], steps[-1]
    growth = {
        key: {
            "p50": ratio(largest[key]["p50_ms"], smallest[key]["p50_ms"]),
            "p99": ratio(largest[key]["p99_ms"], smallest[key]["p99_ms"]),
        }
        for key in ENDPOINTS
    }
    return {"steps": steps, "growth_largest_vs_smallest": growth, "explain_largest": steps[-1]["explain"]}


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument(
        "--requests", type=int, default=200, help="sequential requests per endpoint and size (at most 20 s of them)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's database at the end")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.requests = [PROBE_CALLS + 500, PROBE_CALLS + 3000], 5
    if min(args.sizes) < PROBE_CALLS:
        parser.error(f"every size must be at least {PROBE_CALLS} (the probe user's own calls)")
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        data = run(args.sizes, args.requests, args.keep, Path(tmp))
    rows = []
    for step in data["steps"]:
        for key, label in ENDPOINTS.items():
            rows.append([f"{step['calls_in_table']:,}", label, step[key]["p50_ms"], step[key]["p99_ms"]])
    for key, label in ENDPOINTS.items():
        g = data["growth_largest_vs_smallest"][key]
        rows.append(["largest/smallest", label, f"{g['p50']}x", f"{g['p99']}x"])
    print_table(
        f"Call history at scale (one user with {PROBE_CALLS:,} calls; sequential requests)",
        ["calls in table", "endpoint", "p50 ms", "p99 ms"],
        rows,
    )
    config = {"sizes": args.sizes, "requests": args.requests, "probe_user_calls": PROBE_CALLS, "smoke": args.smoke}
    write_results("history", {"config": config, **data}, args.out)
    explain = data["explain_largest"]
    largest = data["steps"][-1]["calls_in_table"]
    if explain["seq_scans"] and largest >= EXPLAIN_CHECKED_FROM:
        print(f"EXPLAIN at {largest:,} calls: sequential scan of {', '.join(explain['seq_scans'])}: FAILED")
        return 1
    print(
        f"EXPLAIN at {largest:,} calls: {explain['queries']} queries, no sequential scan of {', '.join(SCANNED_TABLES)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
