"""The smoke version of each benchmark runs its real code path end to end on a tiny load, so
that the benchmarks cannot rot; the numbers themselves are not judged here."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(150)


def test_relay_carries_every_message_on_every_variant(run_bench):
    run = run_bench("bench.relay")
    assert run.returncode == 0, run.output[-4000:]
    runs = {r["variant"]: r for r in run.results["runs"]}
    assert set(runs) == {"server-redis", "daphne-redis", "daphne-memory", "uvicorn-redis", "floor"}
    for variant, result in runs.items():
        assert result["messages"] > 0, variant
        assert (result["lost"], result["errors"]) == (0, 0), (variant, result)
        assert result["p50_ms"] <= result["p99_ms"]
    assert all(r["throughput_vs_floor"] for r in run.results["ratios"])
    assert run.results["machine"]["nproc"] >= 1


def test_rest_lifecycle_has_no_errors_and_every_call_is_stored(run_bench):
    run = run_bench("bench.rest")
    assert run.returncode == 0, run.output[-4000:]
    assert {r["variant"] for r in run.results["runs"]} == {"product", "floor"}
    for result in run.results["runs"]:
        assert result["errors"] == 0, result
        assert result["calls_initiated"] > 0 and result["calls_missing_in_db"] == 0
        assert all(result["endpoints"][e]["requests"] > 0 for e in ("initiate", "join", "end"))
        # the server's workers and the backends of the benchmark's own database were found and measured
        cpu = result["cpu_ms_per_request"]
        assert set(cpu) == {"service", "postgres", "redis"} and cpu["service"] > 0 and cpu["postgres"] > 0, cpu
    assert run.results["ratios"][0]["throughput_vs_floor"] > 0
    assert run.results["ratios"][0]["cpu_per_request_vs_floor"] > 0


def test_history_measures_every_endpoint_at_every_size(run_bench):
    run = run_bench("bench.history")
    assert run.returncode == 0, run.output[-4000:]
    steps = run.results["steps"]
    assert [s["calls_in_table"] for s in steps] == [1500, 4000]
    for step in steps:
        assert step["page_size"] == 20 and step["probe_user_calls"] == 1000
        for endpoint in ("history_first_page", "history_second_page", "history_missed_filter", "analytics"):
            assert step[endpoint]["count"] > 0
    assert set(run.results["growth_largest_vs_smallest"]) >= {"history_first_page", "analytics"}


def test_replay_benchmark_lands_every_call_on_every_variant(run_bench):
    run = run_bench("bench.replay")
    assert run.returncode == 0, run.output[-4000:]
    variants = run.results["variants"]
    assert set(variants) == {"floor", "batched", "one_by_one"}
    assert run.results["entries"] == 3 * run.results["calls"]
    for name, result in variants.items():
        assert result["calls_in_database"] == run.results["calls"], name
        assert result["entries_per_s"] > 0 and result["ratio_to_floor"] > 0, name
    assert variants["batched"]["applied"] == variants["one_by_one"]["applied"] == run.results["entries"]


def test_connections_open_and_are_measured(run_bench):
    run = run_bench("bench.connections")
    assert run.returncode == 0, run.output[-4000:]
    for server in ("server", "floor"):
        steps = run.results["servers"][server]
        assert [s["connections"] for s in steps] == [20, 50]
        assert all(s["open"] == s["connections"] and s["failed"] == 0 for s in steps), steps
        assert all(s["rss_mib"] > 0 for s in steps)
    assert run.results["open_files_limit"] > 50


def test_database_outage_drill_passes(run_bench):
    run = run_bench("bench.drills.db_outage")
    assert "Drill (a) database outage: PASS" in run.output, run.output[-4000:]
    counts = run.results["counts"]
    assert run.returncode == 0 and run.results["passed"]
    assert counts["missing"] == 0 and counts["calls_acknowledged"] == counts["calls_in_database"] > 0
    assert counts["deferred_writes"] > 0 and counts["health_not_200"] == 0


def test_redis_outage_drill_passes(run_bench):
    run = run_bench("bench.drills.redis_outage")
    assert "Drill (b) Redis outage: PASS" in run.output, run.output[-4000:]
    counts = run.results["counts"]
    assert counts["close_codes"] == {"4503": counts["sockets"]}
    assert counts["signaling_works_again_after_s"] is not None and counts["health_not_200"] == 0


def test_kill_restart_drill_replays_the_spool_with_nothing_lost(run_bench):
    run = run_bench("bench.drills.kill_restart")
    assert "Drill (c) kill -9 in limited mode, restart, replay: PASS" in run.output, run.output[-4000:]
    counts = run.results["counts"]
    assert counts["spool_depth_at_kill"] > 0 and counts["spool_depth_at_end"] == 0
    assert counts["missing"] == 0 and counts["state_behind_acknowledged"] == 0
