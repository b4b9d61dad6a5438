"""The replay's rate: journaled call writes a second into PostgreSQL, against a floor.

N calls are made while the database is "away" (the process is put in limited mode, so each
initiate, join and end is journaled: 3 N entries), then the spool is replayed into the
benchmark's own database, the way the supervisor does once a probe connects:

- ``batched``: ``spool.replay`` with ``replay.replay_entries`` (the production path);
- ``one_by_one``: the same spool replayed entry by entry (``replay.replay_entry``, the path
  before batching);
- ``floor``: the calls' final rows (calls, participants, timeline events) written with one
  ``bulk_create`` per table in one transaction,
  no spool and no checks: the least the database has to do for the same result.

Each variant starts from the same journal (a copy of the file) and an empty call table. The
ratio is the replay's entries a second over the floor's, measured in the same run.

    .venv-test/bin/python -m bench.replay            # 2,000 calls, 6,000 entries
    .venv-test/bin/python -m bench.replay --calls 500
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.common import arg_parser, print_table, ratio, write_results
from bench.services import BenchDatabase


def journal(pairs, spool_path: Path) -> int:
    from django.conf import settings

    from calls import services
    from calls.persistence import availability, snapshot_cache
    from calls.persistence.spool import get_spool

    settings.SPOOL_PATH = spool_path
    for pair in pairs:
        snapshot_cache.remember_members(pair.conversation_id, [pair.caller.id, pair.callee.id])
    availability.transition(availability.LIMITED, error="bench: journaling")
    for pair in pairs:
        call = services.call_initiate(
            caller_id=pair.caller.id,
            conversation_id=pair.conversation_id,
            callee_ids=[pair.callee.id],
            call_type="video",
        ).record.call
        services.call_join(call_id=call.id, user_id=pair.callee.id)
        services.call_end(call_id=call.id, user_id=pair.caller.id)
    return get_spool().depth()


def clear_calls() -> None:
    from calls.models import Call, CallParticipant, CallTimelineEvent

    CallTimelineEvent.objects.all().delete()
    CallParticipant.objects.all().delete()
    Call.objects.all().delete()


def replay_variant(journal_copy: Path, spool_path: Path, *, batched: bool) -> dict:
    from django.conf import settings

    from calls.models import Call
    from calls.persistence import replay
    from calls.persistence.spool import get_spool

    clear_calls()
    shutil.copy(journal_copy, spool_path)
    settings.SPOOL_PATH = spool_path
    spool = get_spool()
    depth = spool.depth()
    began = time.perf_counter()
    applied = spool.replay(replay.replay_entry, apply_many=replay.replay_entries if batched else None)
    elapsed = time.perf_counter() - began
    return {
        "entries": depth,
        "applied": applied,
        "seconds": round(elapsed, 3),
        "entries_per_s": round(applied / elapsed),
        "calls_in_database": Call.objects.count(),
    }


def floor_variant(journal_copy: Path) -> dict:
    """The final row of every call, written once in bulk: what any replay must at least do."""
    import json
    import sqlite3

    from django.db import transaction

    from calls.models import Call, CallParticipant, CallTimelineEvent
    from calls.persistence.snapshots import decode_call

    clear_calls()
    conn = sqlite3.connect(journal_copy)
    rows = conn.execute("SELECT call_id, payload FROM entries ORDER BY seq").fetchall()
    conn.close()
    newest = dict(rows)  # the newest payload of each call
    began = time.perf_counter()
    records = [decode_call(json.loads(payload)) for payload in newest.values()]
    with transaction.atomic():
        Call.objects.bulk_create([call for call, _, _ in records], batch_size=500)
        CallParticipant.objects.bulk_create([p for _, parts, _ in records for p in parts], batch_size=500)
        CallTimelineEvent.objects.bulk_create([e for _, _, events in records for e in events], batch_size=1000)
    elapsed = time.perf_counter() - began
    return {
        "entries": len(rows),
        "applied": len(rows),
        "seconds": round(elapsed, 3),
        "entries_per_s": round(len(rows) / elapsed),
        "calls_in_database": Call.objects.count(),
    }


def run(args) -> dict:
    from bench.data import close_connections, make_pairs, setup_django

    database = BenchDatabase("replay").create()
    tmp = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    try:
        setup_django(database.url)
        pairs = make_pairs(args.calls, label="replay")
        entries = journal(pairs, tmp / "journal.sqlite3")
        journal_copy = tmp / "journal-copy.sqlite3"
        shutil.copy(tmp / "journal.sqlite3", journal_copy)
        from calls.persistence import availability

        availability.transition(availability.OPERATIONAL)
        variants = {
            "floor": floor_variant(journal_copy),
            "batched": replay_variant(journal_copy, tmp / "spool-batched.sqlite3", batched=True),
            "one_by_one": replay_variant(journal_copy, tmp / "spool-single.sqlite3", batched=False),
        }
        close_connections()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        database.drop()
    floor = variants["floor"]["entries_per_s"]
    for result in variants.values():
        result["ratio_to_floor"] = ratio(result["entries_per_s"], floor)
    passed = all(v["calls_in_database"] == args.calls for v in variants.values()) and entries == 3 * args.calls
    return {"passed": passed, "calls": args.calls, "entries": entries, "variants": variants}


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)
    if args.smoke:
        args.calls = 50
    result = run(args)
    print_table(
        f"Replay of {result['entries']} journaled writes ({result['calls']} calls)",
        ["variant", "entries/s", "seconds", "ratio to floor", "calls in database"],
        [
            [name, v["entries_per_s"], v["seconds"], v["ratio_to_floor"], v["calls_in_database"]]
            for name, v in result["variants"].items()
        ],
    )
    write_results("replay", result, args.out)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
