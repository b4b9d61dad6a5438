"""What every benchmark shares: the command line, latency statistics, the table it prints, the
JSON it writes and the machine it ran on."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
VENV_BIN = Path(sys.executable).parent

# The PostgreSQL server the benchmarks create their own databases on (they never touch others),
# and the Redis database they use (emptied at the end of every run).
PG_SERVER_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
JWT_SECRET = "bench-jwt-secret-0123456789abcdef0123456789"  # noqa: S105 - loopback benchmarks only
# The operator's token for /metrics and /health/ready's full report (the state, the spool depth).
METRICS_TOKEN = "bench-metrics-token-0123456789abcdef"  # noqa: S105 - loopback benchmarks only


def arg_parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes. Also makes SIGTERM end a run like Ctrl-C does, through
    its ``finally`` blocks, so that the servers it started are stopped and its database dropped."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true", help="a tiny run that only proves the benchmark works")
    parser.add_argument("--out", type=Path, help="where to write the JSON results (default: bench/results/)")
    return parser


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(math.ceil(fraction * len(sorted_values)) - 1, 0)
    return sorted_values[min(rank, len(sorted_values) - 1)]


def latency_summary(seconds: list[float]) -> dict:
    """p50/p99/max in milliseconds, and the count."""
    ordered = sorted(seconds)
    return {
        "count": len(ordered),
        "p50_ms": round(percentile(ordered, 0.50) * 1000, 2),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
        "max_ms": round((ordered[-1] if ordered else 0.0) * 1000, 2),
    }


def ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 3) if denominator else None


def machine_info() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def print_table(title: str, headers: list[str], rows: list[list]) -> None:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) if n and _numeric(c) else c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()


def _numeric(text: str) -> bool:
    try:
        float(text.rstrip("x%"))
    except ValueError:
        return False
    return True


def write_results(name: str, data: dict, out: Path | None) -> Path:
    path = out or RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "machine": machine_info(), **data}
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    print(f"\nResults written to {path}")
    return path


class Deadline:
    """A wall-clock bound for a loop: every loop in the benchmarks has one."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def __bool__(self) -> bool:
        return time.monotonic() < self.end

    @property
    def left(self) -> float:
        return max(self.end - time.monotonic(), 0.0)
