"""The promise, end to end: a real daphne process, a real PostgreSQL behind a proxy the test
takes down and brings back, and REST clients making calls through it all."""

from __future__ import annotations

import os
import re
import uuid

import pytest
import redis
from django.conf import settings
from django.db import connection

from accounts.tokens import issue_access_token
from bench.processes import ServiceProcess, wait_until
from bench.tcp_proxy import TcpProxy
from calls.models import Call, CallParticipant
from core.cache import delete_matching
from tests.factories import make_conversation, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

REDIS_TEST_DB = 11


@pytest.fixture
def proxy():
    target = connection.settings_dict
    proxy = TcpProxy(target_host=target["HOST"] or "127.0.0.1", target_port=int(target["PORT"] or 5432))
    proxy.start(accepting=False)
    yield proxy
    proxy.stop()


@pytest.fixture
def redis_prefix():
    """Redis is shared with other runs and other suites on this machine: nothing here flushes it.
    The services get key prefixes of their own for this test, and only those keys are deleted."""
    prefix = f"test-outages-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(f"redis://127.0.0.1:6379/{REDIS_TEST_DB}")
    try:
        delete_matching(client, f"{prefix}-*")
    finally:
        client.close()


@pytest.fixture
def service_env(proxy, tmp_path, redis_prefix):
    return {
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{proxy.port}/{connection.settings_dict['NAME']}",
        "REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_TEST_DB}",
        "CHANNEL_LAYER_PREFIX": f"{redis_prefix}-layer",
        "CACHE_KEY_PREFIX": f"{redis_prefix}-cache",
        "JWT_SECRET": settings.JWT_SECRET,
        "SPOOL_PATH": str(tmp_path / "spool.sqlite3"),
        "DB_STARTUP_MODE": "background",
        "DB_CONNECT_MAX_TRIES": "3",
        "DB_CONNECT_BASE_DELAY": "0.2",
        "DB_CONNECT_MAX_DELAY": "0.4",
        "DB_CONNECT_TIMEOUT": "2",
        "DB_PROBE_MAX_DELAY": "0.5",
        "PUSH_PROVIDER": "none",
        "THROTTLE_CALL_INITIATE": "1000/min",
    }


@pytest.fixture
def services(service_env, tmp_path):
    started = []

    def start(**overrides):
        process = ServiceProcess(env={**service_env, **overrides}, log_path=tmp_path / f"service-{len(started)}.log")
        started.append(process)
        return process.start()

    start.env = service_env
    yield start
    for process in started:
        process.stop()


def token_for(user) -> str:
    return issue_access_token(user_id=user.id, email=user.email, username=user.username, role="user")


def ready_state(service) -> str:
    with service.operator_client() as client:
        return client.get("/health/ready").json()["state"]


def assert_alive(service):
    with service.client() as client:
        response = client.get("/health")
    assert response.status_code == 200 and response.json()["status"] == "healthy"


def test_database_late_at_start_up_the_service_connects_by_itself(proxy, services):
    service = services(DB_CONNECT_MAX_TRIES="30", DB_CONNECT_BASE_DELAY="0.3", DB_CONNECT_MAX_DELAY="0.6")
    assert_alive(service)  # answers at once, before the database is there
    with service.operator_client() as client:
        response = client.get("/health/ready")
    assert response.status_code == 503 and response.json()["state"] == "starting"
    wait_until(lambda: "connection attempt 2 failed" in service.log_text(), timeout=20, message="two attempts")
    proxy.up()
    wait_until(lambda: ready_state(service) == "operational", timeout=30, message="operational")
    log = service.log_text()
    assert re.search(r"PostgreSQL connection attempt 1 failed: .+\. Retrying in \d+\.\ds\.\.\.", log)
    assert re.search(r"Connected to PostgreSQL \(attempt \d+/30\)", log)
    assert "Running in limited mode" not in log
    with service.operator_client() as client:
        body = client.get("/health/ready").json()
    assert body["engine"] == "PostgreSQL" and body["server_version"].startswith("PostgreSQL")
    assert body["spool_depth"] == 0 and body["attempts"] >= 2


def test_long_outage_at_start_up_means_limited_then_recovery_without_restart(proxy, services):
    service = services()
    wait_until(lambda: ready_state(service) == "limited", timeout=30, message="limited")
    assert "Running in limited mode without call logs persistence" in service.log_text()
    with service.operator_client() as client:
        not_ready = client.get("/health/ready")
        assert not_ready.status_code == 503
        assert not_ready.json()["last_error"]
        assert client.get("/health").status_code == 200
    proxy.up()
    wait_until(lambda: ready_state(service) == "operational", timeout=30, message="recovered")
    assert_alive(service)
    pid_before = service.process.pid
    assert service.process.poll() is None and service.process.pid == pid_before


def test_calls_made_during_an_outage_survive_a_restart_and_land_exactly_once(proxy, services, redis_prefix):
    caller, callee = make_user(), make_user()
    conversation = make_conversation(members=[caller, callee])
    proxy.up()
    service = services()
    wait_until(lambda: ready_state(service) == "operational", timeout=30, message="operational")
    as_caller = service.client(token_for(caller))
    as_callee = service.client(token_for(callee))
    # Seen once while the database is up, so its members are in the shared snapshot cache.
    assert as_caller.get(f"/v1/conversations/{conversation.id}").status_code == 200
    shared = redis.Redis.from_url(f"redis://127.0.0.1:6379/{REDIS_TEST_DB}")
    assert list(shared.scan_iter(match=f"{redis_prefix}-cache:*")), "the cache writes under this test's prefix"
    shared.close()

    proxy.down()
    first = as_caller.post(
        "/v1/calls/initiate",
        json={"call_type": "video", "conversation_id": str(conversation.id), "callee_ids": [str(callee.id)]},
    )
    assert first.status_code == 201, first.text
    assert first.headers["X-Persistence"] == "deferred"
    assert first.json()["meta"]["persistence"] == "deferred"
    first_id = first.json()["data"]["call_id"]
    joined = as_callee.post(f"/v1/calls/{first_id}/join")
    ended = as_caller.post(f"/v1/calls/{first_id}/end")
    assert (joined.status_code, ended.status_code) == (200, 200)
    second = as_caller.post(
        "/v1/calls/initiate",
        json={"call_type": "audio", "conversation_id": str(conversation.id), "callee_ids": [str(callee.id)]},
    )
    assert second.status_code == 201, second.text  # a 503 here says which part was unknown locally
    second_id = second.json()["data"]["call_id"]
    assert as_callee.post(f"/v1/calls/{second_id}/join").status_code == 200
    history = as_caller.get("/v1/calls")
    assert history.status_code == 503 and history.json()["error"]["code"] == "PERSISTENCE_UNAVAILABLE"
    assert history.headers["Retry-After"]
    assert_alive(service)
    as_caller.close()
    as_callee.close()

    service.stop()  # restart while still limited: the spool is on disk
    service = services()
    wait_until(lambda: ready_state(service) == "limited", timeout=30, message="limited after restart")
    with service.client(token_for(callee)) as as_callee:
        assert as_callee.get(f"/v1/calls/{second_id}").json()["data"]["status"] == "active"
        hung_up = as_callee.post(f"/v1/calls/{second_id}/end")
    assert hung_up.status_code == 200 and hung_up.headers["X-Persistence"] == "deferred"

    proxy.up()
    wait_until(lambda: ready_state(service) == "operational", timeout=30, message="recovered")
    assert Call.objects.filter(pk__in=[first_id, second_id]).count() == 2
    assert CallParticipant.objects.filter(call_id__in=[first_id, second_id]).count() == 4
    first_call, second_call = Call.objects.get(pk=first_id), Call.objects.get(pk=second_id)
    api_first = ended.json()["data"]
    assert (first_call.status, first_call.end_reason) == ("ended", "hangup")
    assert first_call.started_at.isoformat().replace("+00:00", "Z") == api_first["started_at"]
    assert first_call.answered_at.isoformat().replace("+00:00", "Z") == api_first["answered_at"]
    assert first_call.ended_at.isoformat().replace("+00:00", "Z") == api_first["ended_at"]
    assert (second_call.status, second_call.call_type) == ("ended", "audio")
    with service.client(token_for(caller)) as as_caller:
        listed = as_caller.get("/v1/calls").json()["data"]["calls"]
    assert [c["call_id"] for c in listed] == [second_id, first_id]
    assert "Replayed" in service.log_text()


def test_health_stays_up_while_the_database_comes_and_goes(proxy, services):
    proxy.up()
    service = services()
    wait_until(lambda: ready_state(service) == "operational", timeout=30, message="operational")
    caller, callee = make_user(), make_user()
    conversation = make_conversation(members=[caller, callee])
    with service.client(token_for(caller)) as as_caller:
        as_caller.get(f"/v1/conversations/{conversation.id}")
        proxy.down()
        # The first write after the outage meets the dead connection and opens the breaker.
        response = as_caller.post(
            "/v1/calls/initiate",
            json={"call_type": "video", "conversation_id": str(conversation.id), "callee_ids": [str(callee.id)]},
        )
        assert response.status_code == 201 and response.headers["X-Persistence"] == "deferred"
    assert ready_state(service) == "limited"
    assert_alive(service)
    proxy.up()
    wait_until(lambda: ready_state(service) == "operational", timeout=30, message="recovered")
    assert_alive(service)
    assert Call.objects.filter(pk=response.json()["data"]["call_id"]).count() == 1


def test_blocking_start_up_serves_only_once_the_check_settled(proxy, services, tmp_path):
    from tests.support.servers import ServiceProcess

    service = ServiceProcess(
        env={**services.env, "DB_STARTUP_MODE": "blocking", "DB_CONNECT_MAX_TRIES": "40"},
        log_path=tmp_path / "blocking.log",
    )
    try:
        with pytest.raises(TimeoutError):
            service.start(wait=3)  # the database is down: the port stays closed
        proxy.up()
        service.wait_until_listening(30)
        assert ready_state(service) == "operational", "the first answer is already operational"
    finally:
        service.stop()


def test_a_missing_database_is_reported_at_once_and_not_retried(proxy, services, service_env):
    proxy.up()
    missing = service_env["DATABASE_URL"].rsplit("/", 1)[0] + "/secureconnect_no_such_database"
    service = services(DATABASE_URL=missing, DB_CONNECT_BASE_DELAY="5", DB_CONNECT_MAX_TRIES="5")
    wait_until(lambda: ready_state(service) == "limited", timeout=10, message="limited at once")
    log = service.log_text()
    assert re.search(r"PostgreSQL refused the connection: .*does not exist", log)
    assert "connection attempt 1 failed" not in log, "a permanent error is not retried at start-up"
    with service.operator_client() as client:
        assert "does not exist" in client.get("/health/ready").json()["last_error"]


def test_an_initiate_committed_while_its_answer_was_lost_replays_and_the_service_recovers(proxy, services):
    """The stall of issue 13, through the service: the COMMIT of an initiate reaches PostgreSQL,
    its answer never comes back, and the database stays away while the callee answers. The client
    was told "deferred"; once the database returns, the service is operational again within a few
    probes, with the call once, its two participants, and nothing quarantined."""
    caller, callee = make_user(), make_user()
    conversation = make_conversation(members=[caller, callee])
    proxy.up()
    service = services()
    wait_until(lambda: ready_state(service) == "operational", timeout=30, message="operational")
    with service.client(token_for(caller)) as as_caller:
        assert as_caller.get(f"/v1/conversations/{conversation.id}").status_code == 200
        cut = proxy.cut_at(b"COMMIT", deliver=True)
        started = as_caller.post(
            "/v1/calls/initiate",
            json={"call_type": "video", "conversation_id": str(conversation.id), "callee_ids": [str(callee.id)]},
        )
    assert cut.is_set()
    assert started.status_code == 201 and started.headers["X-Persistence"] == "deferred", started.text
    call_id = started.json()["data"]["call_id"]
    assert Call.objects.filter(pk=call_id).exists(), "the first commit landed"
    assert ready_state(service) == "limited"
    with service.client(token_for(callee)) as as_callee:
        joined = as_callee.post(f"/v1/calls/{call_id}/join")
    assert joined.status_code == 200 and joined.headers["X-Persistence"] == "deferred"
    proxy.up()
    wait_until(lambda: ready_state(service) == "operational", timeout=15, message="operational again")
    with service.operator_client() as client:
        body = client.get("/health/ready").json()
    assert (body["spool_depth"], body["spool_quarantined"]) == (0, 0)
    assert Call.objects.filter(pk=call_id).count() == 1
    assert Call.objects.get(pk=call_id).status == "active"
    assert dict(CallParticipant.objects.filter(call_id=call_id).values_list("user_id", "state")) == {
        caller.id: "joined",
        callee.id: "joined",
    }
    assert "Replay interrupted" not in service.log_text()


def test_two_workers_sharing_one_spool_land_every_acknowledged_call_exactly_once(proxy, services):
    """Two serving processes of one host (the production command's workers) share the spool file.
    During an outage both journal calls, a call begun on one is answered and hung up on the other,
    and requests reach both at once; when the database returns both replay the same file. Every
    call a client was told about is in the database exactly once, in the state it was told, and
    nothing stays journaled or quarantined."""
    from concurrent.futures import ThreadPoolExecutor

    proxy.up()
    first, second = services(), services()
    for worker in (first, second):
        wait_until(lambda w=worker: ready_state(w) == "operational", timeout=30, message="operational")
    pairs = []
    for _ in range(8):
        caller, callee = make_user(), make_user()
        conversation = make_conversation(members=[caller, callee])
        pairs.append((caller, callee, conversation))
        with first.client(token_for(caller)) as as_caller:  # seen, so its members are in the snapshot cache
            assert as_caller.get(f"/v1/conversations/{conversation.id}").status_code == 200
    proxy.down()

    def one_call(index: int) -> tuple[str, dict]:
        caller, callee, conversation = pairs[index]
        here, there = (first, second) if index % 2 else (second, first)
        with here.client(token_for(caller)) as as_caller, there.client(token_for(callee)) as as_callee:
            started = as_caller.post(
                "/v1/calls/initiate",
                json={"call_type": "video", "conversation_id": str(conversation.id), "callee_ids": [str(callee.id)]},
            )
            assert started.status_code == 201, started.text
            call_id = started.json()["data"]["call_id"]
            assert as_callee.post(f"/v1/calls/{call_id}/join").status_code == 200
            if index % 4 == 0:  # half the calls stay active, the others end on the other worker
                return call_id, as_callee.get(f"/v1/calls/{call_id}").json()["data"]
            ended = as_callee.post(f"/v1/calls/{call_id}/end")
            assert ended.status_code == 200 and ended.headers["X-Persistence"] == "deferred"
            return call_id, ended.json()["data"]

    with ThreadPoolExecutor(max_workers=4) as pool:
        told = dict(pool.map(one_call, range(len(pairs))))
    for worker in (first, second):
        assert ready_state(worker) == "limited"
    proxy.up()
    for worker in (first, second):
        wait_until(lambda w=worker: ready_state(w) == "operational", timeout=30, message="both recovered")
        with worker.operator_client() as client:
            body = client.get("/health/ready").json()
        assert (body["spool_depth"], body["spool_quarantined"]) == (0, 0)
    assert Call.objects.filter(pk__in=told).count() == len(told)
    assert CallParticipant.objects.filter(call_id__in=told).count() == 2 * len(told)
    for call_id, answer in told.items():
        call = Call.objects.get(pk=call_id)
        assert call.status == answer["status"], call_id
        assert call.answered_at.isoformat().replace("+00:00", "Z") == answer["answered_at"]
        assert sorted(CallParticipant.objects.filter(call_id=call_id).values_list("state", flat=True)) == sorted(
            p["state"] for p in answer["participants"]
        )
