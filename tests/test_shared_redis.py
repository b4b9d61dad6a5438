"""Redis on a developer's machine or a CI host is shared (other runs, other worktrees, a running
`make run`): no test may flush a database it does not own. Tests give the service key prefixes
of their own (CHANNEL_LAYER_PREFIX, CACHE_KEY_PREFIX) and delete only those keys."""

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.portable

TESTS = Path(__file__).resolve().parent
BENCH = TESTS.parent / "bench"
FLUSH = re.compile(r"\b(flushdb|flushall|FLUSHDB|FLUSHALL)\b")


def test_no_test_or_benchmark_flushes_a_redis_database():
    offenders = [
        f"{path.relative_to(TESTS.parent)}:{number}"
        for path in sorted([*TESTS.rglob("*.py"), *BENCH.rglob("*.py")])
        if path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if FLUSH.search(line)
    ]
    assert not offenders, f"these lines flush a shared Redis: {offenders}"
