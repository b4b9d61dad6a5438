"""Liveness, readiness and metrics, and which processes run the start-up check."""

import pytest
from django.test import Client

from calls import services
from calls.apps import process_serves_requests
from calls.persistence import availability
from tests.factories import make_conversation, make_user


@pytest.mark.portable
@pytest.mark.parametrize(
    ("argv", "environ", "serves"),
    [
        (["/app/secureconnect/server/__main__.py", "--bind", "0.0.0.0"], {}, True),  # python -m secureconnect.server
        (["/venv/bin/daphne", "-p", "8083", "secureconnect.asgi:application"], {}, True),
        (["/venv/lib/python3.11/site-packages/daphne/__main__.py", "secureconnect.asgi:application"], {}, True),
        (["/venv/bin/uvicorn", "secureconnect.asgi:application"], {}, True),
        (["manage.py", "runserver", "127.0.0.1:8083"], {"RUN_MAIN": "true"}, True),
        (["manage.py", "runserver", "127.0.0.1:8083"], {}, False),  # the autoreloader's parent
        (["manage.py", "runserver", "--noreload"], {}, True),
        (["manage.py", "migrate"], {}, False),
        (["manage.py", "shell"], {}, False),
        (["manage.py", "test"], {}, False),
        (["/venv/bin/pytest"], {}, False),
    ],
)
def test_only_serving_processes_run_the_start_up_check(argv, environ, serves):
    assert process_serves_requests(argv, environ) is serves


@pytest.mark.portable
def test_liveness_never_needs_a_backend():
    availability.reset_for_tests(availability.LIMITED)
    response = Client().get("/health")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["service"], body["persistence"]) == ("healthy", "video-service", "limited")


OPERATOR_TOKEN = "operator-token-Zx81qPw7Lm2v"


@pytest.fixture
def operator(settings):
    """METRICS_TOKEN configured; the returned client sends it."""
    settings.METRICS_TOKEN = OPERATOR_TOKEN
    return Client(HTTP_AUTHORIZATION=f"Bearer {OPERATOR_TOKEN}")


@pytest.mark.portable
@pytest.mark.parametrize(("current", "code"), [("starting", 503), ("limited", 503), ("operational", 200)])
def test_readiness_follows_the_state(current, code, spool_path, operator):
    availability.reset_for_tests(current)
    availability.record_attempt(attempts=3, error="connection refused", server_version="PostgreSQL 15.19")
    response = operator.get("/health/ready")
    assert response.status_code == code
    body = response.json()
    assert body["state"] == current and body["attempts"] == 3 and body["spool_depth"] == 0
    assert body["spool_quarantined"] == 0
    assert body["last_error"] == "connection refused" and body["server_version"] == "PostgreSQL 15.19"
    assert body["since"]
    assert ("Retry-After" in response.headers) is (code == 503)


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_metrics_report_state_spool_depth_and_replays(db_proxy, spool_path, operator):
    from calls.background_threads import make_supervisor

    caller, callee = make_user(), make_user()
    conversation = make_conversation(members=[caller, callee])
    services.conversation_open(conversation_id=conversation.id, user_id=caller.id)
    before = metric(operator.get("/metrics").content.decode(), "secureconnect_spool_replayed_records_total")
    limited_before = metric(
        operator.get("/metrics").content.decode(), "secureconnect_persistence_limited_mode_entries_total"
    )
    db_proxy.down()
    services.call_initiate(
        caller_id=caller.id, conversation_id=conversation.id, callee_ids=[callee.id], call_type="audio"
    )
    text = operator.get("/metrics").content.decode()
    assert metric(text, "secureconnect_spool_depth") == 1
    assert 'secureconnect_persistence_state{state="limited"} 1.0' in text
    assert metric(text, "secureconnect_persistence_limited_mode_entries_total") == limited_before + 1
    db_proxy.up()
    assert make_supervisor()._drain_and_close()
    text = operator.get("/metrics").content.decode()
    assert metric(text, "secureconnect_spool_depth") == 0
    assert metric(text, "secureconnect_spool_replayed_records_total") == before + 1
    assert 'secureconnect_persistence_state{state="operational"} 1.0' in text
    for name in (
        "secureconnect_db_connection_attempts_total",
        "secureconnect_transaction_retries_total",
        "secureconnect_db_retries_before_success",
        "secureconnect_spool_refused_writes_total",
    ):
        assert name in text


# What README.md says about the health endpoints, checked as written there.


@pytest.mark.portable
def test_liveness_body_is_plain_json_with_the_documented_keys():
    availability.reset_for_tests(availability.OPERATIONAL)
    body = Client().get("/health").json()
    assert set(body) == {"status", "service", "persistence", "timestamp"}, "not the envelope"
    assert body["persistence"] == "operational" and body["timestamp"].endswith("Z")


@pytest.mark.portable
def test_readiness_body_is_plain_json_with_the_documented_keys(spool_path, operator):
    availability.reset_for_tests(availability.LIMITED)
    response = operator.get("/health/ready")
    expected = {"status", "service", "state", "engine", "server_version", "attempts", "last_error", "since"}
    assert set(response.json()) == expected | {"spool_depth", "spool_quarantined", "channel_layer"}
    assert response.json()["status"] == "not_ready" and response["Retry-After"]


# --- What the public may see (issue 14) -----------------------------------------------------------

INTERNALS = ("127.0.0.1:5432", "PostgreSQL", "connection refused", "attempts", "spool_depth", "channel_layer")


@pytest.mark.portable
@pytest.mark.parametrize(("current", "code", "status"), [("limited", 503, "not_ready"), ("operational", 200, "ready")])
def test_an_anonymous_readiness_probe_learns_only_ready_or_not(current, code, status, operator):
    availability.reset_for_tests(current)
    availability.record_attempt(
        attempts=3, error='connection to "127.0.0.1:5432" refused', server_version="PostgreSQL 15.19"
    )
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong-token"}, {"HTTP_AUTHORIZATION": OPERATOR_TOKEN}):
        response = Client().get("/health/ready", **headers)
        assert response.status_code == code
        assert response.json() == {"status": status}
        assert not any(secret in response.content.decode() for secret in INTERNALS)


@pytest.mark.portable
def test_an_anonymous_readiness_probe_learns_only_ready_or_not_with_no_token_configured(settings):
    settings.METRICS_TOKEN = ""
    availability.record_attempt(attempts=3, error="connection refused", server_version="PostgreSQL 15.19")
    response = Client().get("/health/ready", HTTP_AUTHORIZATION="Bearer ")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


@pytest.mark.portable
def test_liveness_stays_public_and_minimal(operator):
    availability.record_attempt(attempts=3, error="connection refused", server_version="PostgreSQL 15.19")
    body = Client().get("/health").json()
    assert set(body) == {"status", "service", "persistence", "timestamp"}


@pytest.mark.portable
@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("post", "/health", 405, "METHOD_NOT_ALLOWED"),
        ("get", "/health/nothing-here", 404, "NOT_FOUND"),
    ],
)
def test_errors_on_health_paths_use_the_error_envelope(method, path, status, code):
    response = getattr(Client(), method)(path)
    assert response.status_code == status
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == code and "request_id" in body["meta"]


@pytest.mark.portable
def test_an_oversized_body_on_a_health_path_is_413_in_the_envelope(settings):
    response = Client().post(
        "/health", data=b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1), content_type="application/octet-stream"
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.portable
@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong-token", OPERATOR_TOKEN, f"Basic {OPERATOR_TOKEN}", f"Bearer {OPERATOR_TOKEN}x"],
)
def test_scraping_metrics_without_the_token_is_refused(authorization, operator):
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    response = Client().get("/metrics", **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"secureconnect_" not in response.content


@pytest.mark.portable
def test_the_operator_token_scrapes_metrics(operator):
    response = operator.get("/metrics")
    assert response.status_code == 200
    assert b"secureconnect_persistence_state" in response.content


@pytest.mark.portable
def test_metrics_without_a_configured_token_do_not_exist_in_production(settings):
    settings.METRICS_TOKEN = ""
    settings.IS_PRODUCTION = True
    response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 404
    assert b"secureconnect_" not in response.content


@pytest.mark.portable
def test_metrics_without_a_configured_token_are_open_in_development(settings):
    settings.METRICS_TOKEN = ""
    settings.IS_PRODUCTION = False
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert b"secureconnect_persistence_state" in response.content
