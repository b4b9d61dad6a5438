"""Plots (PNG, matplotlib) and Markdown tables for docs/benchmarks.md, from the JSON results
the benchmarks wrote (bench/results/). The results are copied next to the plots, so the
document's numbers can be traced to the run that produced them.

    .venv-test/bin/python -m bench.report                 # plots and results into docs/benchmarks/
    .venv-test/bin/python -m bench.report --markdown      # also print the tables
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from bench.common import RESULTS_DIR, ROOT

DOCS_DIR = ROOT / "docs" / "benchmarks"
NAMES = (
    "relay",
    "rest",
    "rest_uvicorn",
    "history",
    "connections",
    "drill_db_outage",
    "drill_redis_outage",
    "drill_kill_restart",
)
DRILLS = NAMES[-3:]


def load(results: Path) -> dict:
    return {
        name: json.loads((results / f"{name}.json").read_text())
        for name in NAMES
        if (results / f"{name}.json").exists()
    }


def plot_relay(data: dict, out: Path, plt) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    variants = data["config"]["variants"]
    for variant in variants:
        runs = sorted((r for r in data["runs"] if r["variant"] == variant), key=lambda r: r["pairs"])
        n = [r["pairs"] for r in runs]
        left.plot(n, [r["messages_per_s"] for r in runs], marker="o", label=variant)
        right.plot(n, [r["p99_ms"] for r in runs], marker="o", label=variant)
    for axis, label in ((left, "messages relayed per second"), (right, "p99 one-way latency (ms)")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("caller/callee pairs (N)")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
    left.legend()
    fig.suptitle("Signaling relay (loopback, shared 2-core machine)")
    fig.tight_layout()
    fig.savefig(out / "relay.png", dpi=110)


def plot_rest(data: dict, out: Path, plt) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    clients = data["config"]["clients"]
    by = {(r["variant"], r["clients"]): r for r in data["runs"]}
    width = 0.35
    for i, variant in enumerate(("product", "floor")):
        left.bar(
            [x + i * width for x in range(len(clients))],
            [by[(variant, c)]["requests_per_s"] for c in clients],
            width,
            label=variant,
        )
    left.set_xticks([x + width / 2 for x in range(len(clients))], [f"{c} clients" for c in clients])
    left.set_ylabel("requests per second (initiate + join + end)")
    left.set_ylim(top=left.get_ylim()[1] * 1.2)
    left.legend(loc="upper left")
    endpoints = ("initiate", "join", "end")
    labels, p50, p99 = [], [], []
    for c in clients:
        for variant in ("product", "floor"):
            for e in endpoints:
                labels.append(f"{variant}, {c} clients: {e}")
                p50.append(by[(variant, c)]["endpoints"][e]["p50_ms"])
                p99.append(by[(variant, c)]["endpoints"][e]["p99_ms"])
    right.barh(range(len(labels)), p99, color="#f4a582", label="p99")
    right.barh(range(len(labels)), p50, color="#2166ac", label="p50")
    right.set_yticks(range(len(labels)), labels, fontsize=7)
    right.invert_yaxis()
    right.set_xlabel("latency (ms)")
    right.legend()
    fig.suptitle("Call lifecycle over REST on PostgreSQL (loopback, shared 2-core machine)")
    fig.tight_layout()
    fig.savefig(out / "rest.png", dpi=110)


HISTORY_LABELS = {
    "history_first_page": "GET /v1/calls (first page)",
    "history_second_page": "GET /v1/calls (next page)",
    "history_missed_filter": "GET /v1/calls?status=missed",
    "analytics": "GET /v1/calls/analytics",
}


def plot_history(data: dict, out: Path, plt) -> None:
    fig, axis = plt.subplots(figsize=(7.5, 4.5))
    sizes = [s["calls_in_table"] for s in data["steps"]]
    for key, label in HISTORY_LABELS.items():
        line = axis.plot(sizes, [s[key]["p50_ms"] for s in data["steps"]], marker="o", label=f"{label} p50")
        axis.plot(sizes, [s[key]["p99_ms"] for s in data["steps"]], ls=":", color=line[0].get_color())
    axis.set_xscale("log")
    axis.set_xlabel("calls in the table (one user's own history: 1,000 calls)")
    axis.set_ylabel("latency (ms); dotted: p99")
    axis.set_ylim(bottom=0)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    axis.set_title("History and analytics as the table grows")
    fig.tight_layout()
    fig.savefig(out / "history.png", dpi=110)


def plot_connections(data: dict, out: Path, plt) -> None:
    fig, axis = plt.subplots(figsize=(7, 4.2))
    for server, steps in data["servers"].items():
        xs = [0] + [s["connections"] for s in steps]
        ys = [steps[0]["rss_baseline_mib"]] + [s["rss_mib"] for s in steps]
        axis.plot(xs, ys, marker="o", label=server)
    axis.set_xlabel("idle WebSocket connections")
    axis.set_ylabel("resident memory of the server process (MiB)")
    axis.grid(True, alpha=0.3)
    axis.legend()
    axis.set_title("Memory of idle connections on one process")
    fig.tight_layout()
    fig.savefig(out / "connections.png", dpi=110)


def plot_drill(data: dict, out: Path, plt) -> None:
    counts = data["counts"]
    timeline = counts.get("spool_depth_timeline") or []
    if not timeline or not isinstance(timeline[0], list | tuple):
        return
    fig, axis = plt.subplots(figsize=(8, 4))
    axis.plot([p[0] for p in timeline], [p[-1] for p in timeline], color="#b2182b", label="spool depth")
    not_ready = [p[0] for p in timeline if len(p) == 3 and p[1] != "operational"]
    for n, at in enumerate(not_ready):  # shade every poll that found the service not ready
        axis.axvspan(at - 0.25, at + 0.25, color="#fddbc7", lw=0, label="/health/ready 503" if n == 0 else None)
    if not_ready:
        axis.legend(loc="upper right", fontsize=8)
    for event, at in counts.get("events_s", {}).items():
        axis.axvline(at, color="grey", ls="--", lw=1)
        axis.annotate(event, (at, axis.get_ylim()[1] * 0.95), rotation=90, va="top", ha="right", fontsize=8)
    axis.set_xlabel("seconds since the load started")
    axis.set_ylabel("call writes waiting in the spool")
    axis.grid(True, alpha=0.3)
    axis.set_title(f"Drill (a): database away for {counts['outage_s']:g} s under a steady call load")
    fig.tight_layout()
    fig.savefig(out / "drill_db_outage.png", dpi=110)


def markdown(results: dict) -> str:
    lines = []
    if "relay" in results:
        ratios = {(r["variant"], r["pairs"]): r for r in results["relay"]["ratios"]}
        lines += [
            "| N pairs | variant | msg/s | p50 ms | p99 ms | lost | vs floor | server CPU % | Redis CPU % |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in sorted(results["relay"]["runs"], key=lambda r: (r["pairs"], r["variant"])):
            v = ratios[(r["variant"], r["pairs"])]["throughput_vs_floor"]
            lines.append(
                f"| {r['pairs']} | {r['variant']} | {r['messages_per_s']:,.0f} | {r['p50_ms']} | {r['p99_ms']} | "
                f"{r['lost']} | {v}x | {r['server_cpu_pct']} | {r['redis_cpu_pct']} |"
            )
        lines.append("")
    for rest in ("rest", "rest_uvicorn"):
        if rest not in results:
            continue
        ratios = {r["clients"]: r for r in results[rest]["ratios"]}
        lines += [
            f"Server: {results[rest]['config'].get('server', 'daphne')}",
            "",
            "| clients | variant | endpoint | req/s | p50 ms | p99 ms | errors |",
            "|---:|---|---|---:|---:|---:|---:|",
        ]
        for r in results[rest]["runs"]:
            for e, m in r["endpoints"].items():
                lines.append(
                    f"| {r['clients']} | {r['variant']} | {e} | {m['rps']} | {m['p50_ms']} | {m['p99_ms']} "
                    f"| {m['errors']} |"
                )
            lines.append(
                f"| {r['clients']} | {r['variant']} | **all** | **{r['requests_per_s']}** | | | {r['errors']} |"
            )
        lines.append("")
        lines.append("| clients | all req/s product / floor | initiate p50 | join p50 | end p50 |")
        lines.append("|---:|---:|---:|---:|---:|")
        for c, r in ratios.items():
            lines.append(
                f"| {c} | {r['throughput_vs_floor']}x | {r['initiate_p50_vs_floor']}x | "
                f"{r['join_p50_vs_floor']}x | {r['end_p50_vs_floor']}x |"
            )
        lines.append("")
    if "history" in results:
        steps = results["history"]["steps"]
        header = "| endpoint | " + " | ".join(f"{s['calls_in_table']:,} p50 / p99 ms" for s in steps)
        lines += [header + " | largest / smallest p50 |", "|---|" + "---:|" * (len(steps) + 1)]
        growth = results["history"]["growth_largest_vs_smallest"]
        for key, label in HISTORY_LABELS.items():
            cells = " | ".join(f"{s[key]['p50_ms']} / {s[key]['p99_ms']}" for s in steps)
            lines.append(f"| `{label}` | {cells} | {growth[key]['p50']}x |")
        lines.append("")
        lines.append("Build time (COPY + ANALYZE) per step: " + ", ".join(f"{s['build_s']} s" for s in steps))
        lines.append("")
    if "connections" in results:
        lines += [
            "| server | connections | open | failed | time to open (s) | opened/s | RSS MiB | KiB / connection |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for server, steps in results["connections"]["servers"].items():
            for s in steps:
                lines.append(
                    f"| {server} | {s['connections']:,} | {s['open']:,} | {s['failed']} | {s['open_s']} | "
                    f"{s['opened_per_s']} | {s['rss_mib']} | {s['kib_per_connection']} |"
                )
        lines.append("")
    for name in DRILLS:
        if name in results:
            r = results[name]
            lines.append(f"**{name}**: {'PASS' if r['passed'] else 'FAIL'}")
            lines.append("")
            lines.append("```")
            lines += [
                f"{k}: {v}" for k, v in r["counts"].items() if k not in ("spool_depth_timeline", "failure_samples")
            ]
            lines.append("```")
            lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    parser.add_argument("--out", type=Path, default=DOCS_DIR)
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    args = parser.parse_args(argv)
    results = load(args.results)
    if not results:
        parser.error(f"no results in {args.results}; run a benchmark first")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    args.out.mkdir(parents=True, exist_ok=True)
    plotters = {
        "relay": plot_relay,
        "rest": plot_rest,
        "history": plot_history,
        "connections": plot_connections,
        "drill_db_outage": plot_drill,
    }
    for name, plot in plotters.items():
        if name in results and not results[name]["config"].get("smoke"):
            plot(results[name], args.out, plt)
            print(f"wrote {args.out / (name + '.png')}")
    data_dir = args.out / "results"
    data_dir.mkdir(exist_ok=True)
    for name in results:
        shutil.copy(args.results / f"{name}.json", data_dir / f"{name}.json")
    if args.markdown:
        print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
