"""The connection pool (secureconnect/db/pool.py), for real: a production server process, a real
PostgreSQL behind a TCP proxy the test cuts and brings back, connections counted by the server."""

from __future__ import annotations

import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError, connection

from accounts.tokens import issue_access_token
from bench.processes import ServiceProcess, wait_until
from bench.tcp_proxy import TcpProxy
from core.db_errors import is_transient
from secureconnect import config
from secureconnect.db import pool as pool_module
from secureconnect.db.pool import ConnectionPool
from tests.factories import make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

POOL_SIZE = 3


@pytest.fixture
def proxy():
    target = connection.settings_dict
    proxy = TcpProxy(target_host=target["HOST"] or "127.0.0.1", target_port=int(target["PORT"] or 5432))
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def application_name():
    return f"pooltest-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def start_service(proxy, tmp_path, application_name):
    started = []

    def start(**overrides):
        env = {
            "DATABASE_URL": (
                f"postgres://postgres@127.0.0.1:{proxy.port}/{connection.settings_dict['NAME']}"
                f"?application_name={application_name}"
            ),
            "JWT_SECRET": settings.JWT_SECRET,
            "SPOOL_PATH": str(tmp_path / "spool.sqlite3"),
            "DB_STARTUP_MODE": "blocking",
            "DB_CONNECT_TIMEOUT": "2",
            "DB_PROBE_MAX_DELAY": "0.5",
            "DB_POOL_MAX_SIZE": str(POOL_SIZE),
            "PUSH_PROVIDER": "none",
            "THROTTLE_USER": "100000/min",
            **overrides,
        }
        service = ServiceProcess(env=env, log_path=tmp_path / f"service-{len(started)}.log")
        started.append(service)
        return service.start()

    yield start
    for service in started:
        service.stop()


def server_connections(application_name) -> int:
    """Connections the service holds open on PostgreSQL (counted by the server, not the service)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [application_name])
        return cursor.fetchone()[0]


def pool_metrics(service) -> dict[str, float]:
    with service.operator_client() as client:
        text = client.get("/metrics").text
    found = re.findall(r'^secureconnect_db_pool_connections\{state="(\w+)"\} ([0-9.]+)$', text, re.M)
    maximum = re.search(r"^secureconnect_db_pool_max_connections ([0-9.]+)$", text, re.M)
    return {**{state: float(value) for state, value in found}, "max": float(maximum.group(1)) if maximum else None}


def history_statuses(service, token, count, *, parallel=1) -> list[int]:
    def one(_):
        with service.client(token) as client:
            return client.get("/v1/calls").status_code

    with ThreadPoolExecutor(parallel) as workers:
        return list(workers.map(one, range(count)))


@pytest.fixture
def token():
    user = make_user()
    return issue_access_token(user_id=user.id, email=user.email, username=user.username, role="user")


def test_connections_are_reused_across_requests_and_bounded_per_process(start_service, token, application_name):
    service = start_service()
    assert history_statuses(service, token, 20) == [200] * 20
    # Sequential requests, each on a thread of its own: one connection, handed from one to the next.
    assert server_connections(application_name) == 1
    assert history_statuses(service, token, 60, parallel=12) == [200] * 60
    open_now = server_connections(application_name)
    assert 1 <= open_now <= POOL_SIZE
    metrics = pool_metrics(service)
    assert metrics["max"] == POOL_SIZE
    assert metrics["in_use"] == 0
    assert metrics["idle"] == open_now


def test_without_a_pool_every_request_closes_its_connection(start_service, token, application_name):
    service = start_service(DB_POOL_MAX_SIZE="0")
    assert history_statuses(service, token, 5) == [200] * 5
    wait_until(lambda: server_connections(application_name) == 0, timeout=5, message="connections closed")


def test_after_a_database_restart_no_request_gets_a_dead_connection(start_service, proxy, token, application_name):
    service = start_service()
    assert history_statuses(service, token, 30, parallel=POOL_SIZE) == [200] * 30
    assert server_connections(application_name) >= 1
    proxy.down()  # every open connection is cut, as a restart of the database does
    wait_until(lambda: server_connections(application_name) == 0, timeout=10, message="connections gone")
    proxy.up()
    # The very first request after the database's return, then more, in parallel: every one 200.
    assert history_statuses(service, token, 1) == [200]
    assert history_statuses(service, token, 30, parallel=POOL_SIZE) == [200] * 30
    assert pool_metrics(service)["in_use"] == 0


def test_a_request_during_an_outage_is_a_quick_503_and_the_first_after_recovery_succeeds(start_service, proxy, token):
    service = start_service()
    assert history_statuses(service, token, 10, parallel=POOL_SIZE) == [200] * 10
    proxy.down()
    with service.client(token) as client:
        response = client.get("/v1/calls")
    assert response.status_code == 503, response.text
    assert response.elapsed.total_seconds() < 4  # a refused connection, not a wait for the pool
    proxy.up()

    def ready():
        with service.operator_client() as client:
            return client.get("/health/ready").status_code == 200

    wait_until(ready, timeout=30, message="ready again")
    assert history_statuses(service, token, 1) == [200]
    assert history_statuses(service, token, 20, parallel=POOL_SIZE) == [200] * 20


def test_pool_settings_come_from_the_environment(monkeypatch):
    postgres = config.parse_database_url("postgres://u@h:5432/d", variable="DATABASE_URL")
    monkeypatch.setenv("DB_POOL_MAX_SIZE", "7")
    monkeypatch.setenv("DB_POOL_TIMEOUT", "2.5")
    pooled = config.with_connection_pool(postgres)
    assert pooled["ENGINE"] == "secureconnect.db.postgresql"
    assert pooled["POOL"] == {"max_size": 7, "timeout": 2.5} and pooled["CONN_MAX_AGE"] == 0
    cockroach = config.parse_database_url("cockroach://u@h:26257/d", variable="DATABASE_URL")
    assert config.with_connection_pool(cockroach)["ENGINE"] == "secureconnect.db.cockroachdb"
    sqlite = config.parse_database_url("sqlite:///x.sqlite3", variable="DATABASE_URL")
    assert config.with_connection_pool(sqlite) == sqlite
    monkeypatch.setenv("DB_POOL_MAX_SIZE", "0")
    assert config.with_connection_pool(postgres) == postgres
    monkeypatch.setenv("DB_POOL_MAX_SIZE", "-1")
    with pytest.raises(ImproperlyConfigured, match="DB_POOL_MAX_SIZE must be at least 0"):
        config.with_connection_pool(postgres)


def test_a_full_pool_makes_a_request_wait_then_fail_as_a_database_that_timed_out(transactional_db):
    params = {k: v for k, v in connection.get_connection_params().items() if k not in ("cursor_factory", "context")}
    pool = ConnectionPool(max_size=1, timeout=0.3)
    first = pool.acquire(lambda: psycopg2.connect(**params), psycopg2.OperationalError)
    started = time.monotonic()
    with pytest.raises(psycopg2.OperationalError, match=r"timed out after 0\.3 s") as excinfo:
        pool.acquire(lambda: psycopg2.connect(**params), psycopg2.OperationalError)
    assert time.monotonic() - started >= 0.3
    wrapped = OperationalError(str(excinfo.value))
    wrapped.__cause__ = excinfo.value
    assert is_transient(wrapped)  # journaled or 503, as an outage, never a 500
    pool.release(first)
    assert pool.acquire(lambda: psycopg2.connect(**params), psycopg2.OperationalError) is first  # reused
    pool.release(first, discard=True)
    assert first.closed and (pool.in_use, pool.idle) == (0, 0)


def direct_params() -> dict:
    return {k: v for k, v in connection.get_connection_params().items() if k not in ("cursor_factory", "context")}


def test_a_connection_the_server_terminated_is_never_handed_out_again(transactional_db):
    params = direct_params()
    pool = ConnectionPool(max_size=2, timeout=1)
    pooled = pool.acquire(lambda: psycopg2.connect(**params), psycopg2.OperationalError)
    pid = pooled.get_backend_pid()
    pool.release(pooled)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    wait_until(lambda: not server_has_backend(pid), timeout=5, message="backend gone")
    handed = pool.acquire(lambda: psycopg2.connect(**params), psycopg2.OperationalError)
    try:
        assert handed is not pooled and handed.get_backend_pid() != pid
        with handed.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
    finally:
        pool.release(handed, discard=True)


def test_a_connection_idle_too_long_is_replaced(transactional_db, monkeypatch):
    params = direct_params()
    pool = ConnectionPool(max_size=1, timeout=1)
    first = pool.acquire(lambda: psycopg2.connect(**params), psycopg2.OperationalError)
    pool.release(first)
    monkeypatch.setattr(pool_module, "MAX_IDLE_SECONDS", 0.0)
    second = pool.acquire(lambda: psycopg2.connect(**params), psycopg2.OperationalError)
    assert second is not first and first.closed
    pool.release(second, discard=True)


def server_has_backend(pid) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()[0] == 1
