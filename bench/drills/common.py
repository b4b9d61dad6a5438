"""What the drills share: their set-up (a database of their own, a proxy to cut, people with
conversations, the service's environment) and its clean-up, a steady call load whose every
acknowledged write is remembered, the check of those writes against the database afterwards,
and polling of the health endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import METRICS_TOKEN, REDIS_URL
from bench.http import HttpConnection
from bench.services import RUN_KEY_PREFIX, BenchDatabase, Server, redis_delete_own_keys, redis_url_via
from bench.tcp_proxy import TcpProxy

TERMINAL = {"ended", "cancelled", "declined", "missed", "failed"}


@dataclass
class Ledger:
    """What the clients were told: every acknowledged operation per call, and every failure."""

    acknowledged: dict[str, list[str]] = field(default_factory=dict)
    deferred: int = 0
    requests: int = 0
    failures: Counter = field(default_factory=Counter)  # "<endpoint> <status>" -> count
    samples: list[str] = field(default_factory=list)
    slowest_s: float = 0.0
    slower_than_1s: int = 0
    # The drill names the phase it is in ("before", "outage", "recovering", ...), so that slow
    # requests can be told apart: during the outage (a first write meeting the cut connection)
    # or during the drain (the replay holding requests up).
    phase: str = "before"
    slower_than_1s_by_phase: Counter = field(default_factory=Counter)
    slowest_s_by_phase: dict[str, float] = field(default_factory=dict)

    def timed(self, seconds: float) -> None:
        self.slowest_s = max(self.slowest_s, round(seconds, 2))
        self.slower_than_1s += seconds > 1
        self.slower_than_1s_by_phase[self.phase] += seconds > 1
        self.slowest_s_by_phase[self.phase] = max(self.slowest_s_by_phase.get(self.phase, 0.0), round(seconds, 2))

    def ok(self, call_id: str, operation: str, deferred: bool) -> None:
        self.acknowledged.setdefault(call_id, []).append(operation)
        self.deferred += deferred

    def failed(self, endpoint: str, status: int, body: bytes) -> None:
        self.failures[f"{endpoint} {status or 'no answer'}"] += 1
        if len(self.samples) < 5:
            self.samples.append(f"{endpoint} {status}: {body[:160]!r}")

    @property
    def failed_requests(self) -> int:
        return sum(self.failures.values())

    @property
    def server_errors(self) -> int:
        """5xx answers other than the clean refusal (503 PERSISTENCE_UNAVAILABLE)."""
        return sum(n for key, n in self.failures.items() if key.rsplit(" ", 1)[1].startswith("5") and "503" not in key)

    @property
    def unanswered(self) -> int:
        """Requests with no answer: the connection dropped, or none came within the client's timeout."""
        return sum(n for key, n in self.failures.items() if key.endswith("no answer"))

    def counts(self) -> dict:
        """The request counts every drill reports."""
        return {
            "requests": self.requests,
            "failed_requests": self.failed_requests,
            "failures_by_endpoint_and_status": dict(self.failures),
            "failure_samples": self.samples,
            "unanswered_requests": self.unanswered,
            "server_errors_5xx_not_503": self.server_errors,
            "slowest_request_s": self.slowest_s,
            "requests_slower_than_1s": self.slower_than_1s,
            "requests_slower_than_1s_by_phase": dict(self.slower_than_1s_by_phase),
            "slowest_request_s_by_phase": self.slowest_s_by_phase,
            "deferred_writes": self.deferred,
        }


@dataclass
class DrillSetup:
    database: BenchDatabase
    proxy: TcpProxy  # in front of what the drill cuts
    pairs: list
    env: dict[str, str]  # the service's environment, through the proxy


@contextlib.contextmanager
def drill_setup(
    label: str, *, clients: int, log_dir: Path, cut: str = "database", with_calls: bool = False, env=()
) -> Iterator[DrillSetup]:
    """A benchmark database with ``clients`` pairs of people (each with a conversation, and an
    active call with ``with_calls``), a proxy in front of the database or of Redis (``cut``), and
    the service environment that goes through it; dropped, stopped and deleted afterwards (only
    this run's Redis keys)."""
    from bench.data import close_connections, make_pairs, setup_django

    database = BenchDatabase(f"drill_{label}").create()
    if cut == "database":
        proxy = TcpProxy(target_host=database.host, target_port=database.port).start()
    else:
        host, port = REDIS_URL.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        proxy = TcpProxy(target_host=host, target_port=int(port)).start()
    try:
        setup_django(database.url)
        pairs = make_pairs(clients, label=f"drill{label}", with_calls=with_calls)
        close_connections()
        service_env = {
            "DATABASE_URL": database.url_via(proxy.port) if cut == "database" else database.url,
            "REDIS_URL": REDIS_URL if cut == "database" else redis_url_via(proxy.port),
            "CHANNEL_LAYER_PREFIX": f"{RUN_KEY_PREFIX}-drill-{label}",
            "SPOOL_PATH": str(log_dir / "spool.sqlite3"),
            "LOG_LEVEL": "INFO",
            **dict(env),
        }
        yield DrillSetup(database=database, proxy=proxy, pairs=pairs, env=service_env)
    finally:
        proxy.stop()
        close_connections()
        database.drop()
        redis_delete_own_keys()


def replayed_log_lines(log: str) -> list[str]:
    return [line.split("] ", 1)[-1] for line in log.splitlines() if "Replayed" in line][:5]


class CallLoad:
    """Clients, one conversation each, making calls (initiate, join, end) at a steady pace until
    stopped. A cycle that fails leaves its call to be ended by the next cycle (409 names it)."""

    def __init__(self, server: Server, pairs, *, pause: float = 0.1, timeout: float = 10.0):
        self.server = server
        self.pairs = pairs
        self.pause = pause
        self.timeout = timeout
        self.ledger = Ledger()
        self.stopping = False
        self.tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._client(pair)) for pair in self.pairs]

    async def stop(self) -> None:
        self.stopping = True
        await asyncio.wait(self.tasks, timeout=self.timeout * 4)

    async def _post(self, connection, endpoint, path, token, body, expected, call_id=None):
        self.ledger.requests += 1
        started = time.monotonic()
        try:
            status, payload = await connection.request("POST", path, json_body=body, token=token)
        except (ConnectionError, TimeoutError) as exc:
            status, payload = 0, f"{type(exc).__name__}: {exc}".encode()
        self.ledger.timed(time.monotonic() - started)
        if status == expected:
            data = json.loads(payload)
            call_id = call_id or data["data"]["call_id"]
            self.ledger.ok(call_id, endpoint, data.get("meta", {}).get("persistence") == "deferred")
            return call_id, None
        self.ledger.failed(endpoint, status, payload)
        return None, (status, payload)

    async def _client(self, pair) -> None:
        connection = HttpConnection("127.0.0.1", self.server.port, timeout=self.timeout)
        initiate = {"call_type": "video", "conversation_id": pair.conversation_id, "callee_ids": [pair.callee.id]}
        try:
            while not self.stopping:
                call_id, error = await self._post(
                    connection, "initiate", "/v1/calls/initiate", pair.caller.token, initiate, 201
                )
                if call_id is None and error and error[0] == 409:
                    live = json.loads(error[1]).get("error", {}).get("details", {}).get("call_id")
                    if live:  # a call an earlier failed cycle left ringing or active
                        await self._post(connection, "end", f"/v1/calls/{live}/end", pair.caller.token, {}, 200, live)
                if call_id is not None:
                    joined, _ = await self._post(
                        connection, "join", f"/v1/calls/{call_id}/join", pair.callee.token, None, 200, call_id
                    )
                    if joined:
                        await asyncio.sleep(self.pause)
                    await self._post(connection, "end", f"/v1/calls/{call_id}/end", pair.caller.token, {}, 200, call_id)
                await asyncio.sleep(self.pause)
        finally:
            await connection.close()


def check_calls(ledger: Ledger) -> dict:
    """Every acknowledged call against the database (through the ORM, not the service)."""
    from calls.models import Call, CallParticipant

    ids = list(ledger.acknowledged)
    rows = dict(Call.objects.filter(pk__in=ids).values_list("pk", "status"))
    participants = Counter(
        str(c) for c in CallParticipant.objects.filter(call_id__in=ids).values_list("call_id", flat=True)
    )
    rows = {str(k): v for k, v in rows.items()}
    missing, behind = [], []
    for call_id, operations in ledger.acknowledged.items():
        status = rows.get(call_id)
        if status is None:
            missing.append(call_id)
        elif ("end" in operations and status not in TERMINAL) or ("join" in operations and status == "ringing"):
            behind.append(f"{call_id}: acknowledged {operations}, database says {status}")
    wrong_participants = [c for c in rows if participants.get(c, 0) != 2]
    return {
        "calls_acknowledged": len(ids),
        "calls_in_database": len(rows),
        "missing": len(missing),
        "state_behind_acknowledged": len(behind),
        "wrong_participant_count": len(wrong_participants),
        "examples": (missing + behind + wrong_participants)[:5],
    }


class HealthWatch:
    """Polls /health every ``interval`` seconds while the drill runs, and /health/ready too:
    the persistence state and spool depth over time (``timeline``)."""

    def __init__(self, server: Server, interval: float = 0.5):
        self.server = server
        self.interval = interval
        self.polls = 0
        self.not_ok: list[str] = []
        self.timeline: list[tuple[float, str, int | None]] = []
        self.events: dict[str, float] = {}
        self.task: asyncio.Task | None = None
        self.started = time.monotonic()

    def mark(self, event: str) -> None:
        """Note when something happened, on the timeline's clock."""
        self.events[event] = round(time.monotonic() - self.started, 1)

    def start(self) -> None:
        self.started = time.monotonic()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        connection = HttpConnection("127.0.0.1", self.server.port, timeout=5)
        try:
            while True:
                self.polls += 1
                try:
                    status, body = await connection.request("GET", "/health")
                except (ConnectionError, TimeoutError) as exc:
                    status, body = 0, str(exc).encode()
                if status != 200:
                    self.not_ok.append(f"{status} {body[:100]!r}")
                try:
                    _, body = await connection.request("GET", "/health/ready", token=METRICS_TOKEN)
                    ready = json.loads(body)
                    self.timeline.append(
                        (round(time.monotonic() - self.started, 1), ready.get("state"), ready.get("spool_depth"))
                    )
                except (ConnectionError, TimeoutError, ValueError):
                    self.timeline.append((round(time.monotonic() - self.started, 1), "no answer", None))
                await asyncio.sleep(self.interval)
        finally:
            await connection.close()

    @property
    def states_seen(self) -> list[str]:
        return list(dict.fromkeys(state for _, state, _ in self.timeline))

    @property
    def max_spool_depth(self) -> int:
        return max((depth or 0 for _, _, depth in self.timeline), default=0)

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def seconds_until_ready(server: Server, since: float, timeout: float) -> float | None:
    """Seconds from ``since`` (a ``time.monotonic()``) until /health/ready answers 200; None if never."""
    connection = HttpConnection("127.0.0.1", server.port, timeout=5)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                status, _ = await connection.request("GET", "/health/ready")
            except (ConnectionError, TimeoutError):
                status = 0
            if status == 200:
                return round(time.monotonic() - since, 2)
            await asyncio.sleep(0.1)
    finally:
        await connection.close()
    return None


async def ready_body(server: Server) -> dict:
    connection = HttpConnection("127.0.0.1", server.port, timeout=5)
    try:
        _, body = await connection.request("GET", "/health/ready", token=METRICS_TOKEN)
        return json.loads(body)
    except (ConnectionError, TimeoutError, ValueError):
        return {}
    finally:
        await connection.close()


async def prime_members(server: Server, pairs) -> None:
    """Read each conversation once while the database is up, so that its members are in the
    shared snapshot cache (starting a call during an outage needs them)."""
    connection = HttpConnection("127.0.0.1", server.port)
    try:
        for pair in pairs:
            status, body = await connection.request(
                "GET", f"/v1/conversations/{pair.conversation_id}", token=pair.caller.token
            )
            if status != 200:
                raise RuntimeError(f"conversation read answered {status}: {body[:200]!r}")
    finally:
        await connection.close()


def verdict(name: str, passed: bool, counts: dict) -> None:
    print(f"\n{name}: {'PASS' if passed else 'FAIL'}")
    for key, value in counts.items():
        if isinstance(value, list) and len(value) > 12:
            value = f"{len(value)} points (in the JSON results)"
        print(f"  {key}: {value}")
