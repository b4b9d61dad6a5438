"""A real production server (uvicorn, then daphne: SERVER_IMPLEMENTATION) with ENV=production,
attacked over real HTTP: a token forged with the public development secret, plain HTTP, a spoofed
X-Forwarded-Proto, cookies read off the wire, and the operator endpoints asked anonymously."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import httpx
import pytest
from django.conf import settings
from django.test import Client

from accounts.tokens import issue_access_token
from bench.processes import METRICS_TOKEN, ROOT, ServiceProcess
from secureconnect import config
from tests.support.production import production_environment

pytestmark = [pytest.mark.portable, pytest.mark.timeout(120)]

API = "/v1/calls/ice-servers"  # authenticated, needs no database row


@pytest.fixture(params=("uvicorn", "daphne"))
def start_production(request, tmp_path):
    started = []

    def start(**overrides) -> ServiceProcess:
        env = production_environment(tmp_path, SERVER_IMPLEMENTATION=request.param, **overrides)
        process = ServiceProcess(env=env, log_path=tmp_path / f"server-{len(started)}.log")
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


def forged_token_for(victim_id: uuid.UUID) -> str:
    """What anyone who read the source can make: a token for someone else, signed with the
    development JWT secret (this test process runs with it)."""
    assert settings.JWT_SECRET == config.DEVELOPMENT_JWT_SECRET
    return issue_access_token(user_id=victim_id, email="victim@example.com", username="victim", role="admin")


def test_a_token_forged_with_the_development_jwt_secret_impersonates_no_one_in_production(start_production):
    forged = forged_token_for(uuid.uuid4())
    # The forgery is a valid token wherever the development secret is in use...
    assert Client().get(API, HTTP_AUTHORIZATION=f"Bearer {forged}").status_code == 200
    # ...so production will not start with that secret, and says why in one line.
    with pytest.raises(RuntimeError, match="exited with 2"):
        start_production(JWT_SECRET=config.DEVELOPMENT_JWT_SECRET)
    # Started with a real secret, the same server refuses the forgery.
    service = start_production()
    with service.client(forged) as client:
        assert client.get(API).status_code == 401


def test_production_refuses_the_development_jwt_secret_with_one_line(tmp_path):
    service = ServiceProcess(
        env=production_environment(tmp_path, JWT_SECRET=config.DEVELOPMENT_JWT_SECRET), log_path=tmp_path / "d.log"
    )
    with pytest.raises(RuntimeError):
        service.start()
    assert service.process.returncode == 2
    assert "Configuration error: JWT_SECRET is a development value written in the source code" in service.log_text()
    assert "Traceback" not in service.log_text()


# --- transport ------------------------------------------------------------------------------------


def test_plain_http_is_redirected_to_https(start_production):
    service = start_production(SECURE_SSL_REDIRECT="")  # the production default
    with httpx.Client(base_url=service.url, timeout=10) as client:
        response = client.get(f"{API}?x=1")
        assert response.status_code == 301
        assert response.headers["Location"] == f"https://127.0.0.1:{service.port}{API}?x=1"
        assert "Strict-Transport-Security" not in response.headers  # sent only over https


def test_health_checks_over_plain_http_are_not_redirected(start_production):
    service = start_production(SECURE_SSL_REDIRECT="")
    with httpx.Client(base_url=service.url, timeout=10) as client:
        assert client.get("/health").status_code == 200
        ready = client.get("/health/ready")
        assert ready.status_code in (200, 503) and set(ready.json()) == {"status"}
        assert client.get("/health/ready/").status_code == 301  # only the two exact paths


def test_a_client_cannot_claim_https_when_no_proxy_is_trusted(start_production):
    service = start_production(SECURE_SSL_REDIRECT="", NUM_PROXIES="0")
    with httpx.Client(base_url=service.url, timeout=10) as client:
        response = client.get(API, headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 301
    assert "Strict-Transport-Security" not in response.headers


def test_behind_a_trusted_proxy_https_gets_hsts_and_secure_cookies(start_production, tmp_path):
    """The admin login over https (as the proxy reports it): the csrftoken and, after logging in,
    the sessionid cookies are Secure, and the answers carry a year of HSTS."""
    env = production_environment(tmp_path, NUM_PROXIES="1", DJANGO_SUPERUSER_PASSWORD="a-long-admin-passphrase-7")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "TEST_DATABASE"))}
    manage = {**base, **env, "DJANGO_SETTINGS_MODULE": "secureconnect.settings"}
    for command in (
        ["migrate", "--no-input", "-v", "0"],
        ["createsuperuser", "--no-input", "--email", "ops@example.com", "--username", "ops"],
    ):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=manage, check=True, timeout=120)
    service = start_production(NUM_PROXIES="1", SECURE_SSL_REDIRECT="")
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    with httpx.Client(base_url=service.url, headers=https, timeout=15) as client:
        login_page = client.get("/admin/login/")
        assert login_page.status_code == 200
        assert login_page.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
        set_cookie = login_page.headers["Set-Cookie"]
        assert re.search(r"csrftoken=[^;]+;.*\bSecure\b", set_cookie)
        # The client speaks plain HTTP to the "proxy" here, so its cookie jar keeps Secure cookies
        # to itself (as a browser would): hand the CSRF cookie back by hand.
        csrf_cookie = re.search(r"csrftoken=([^;]+)", set_cookie).group(1)
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text).group(1)
        logged_in = client.post(
            "/admin/login/?next=/admin/",
            data={"csrfmiddlewaretoken": csrf, "username": "ops@example.com", "password": "a-long-admin-passphrase-7"},
            headers={"Referer": f"https://127.0.0.1:{service.port}/admin/login/", "Cookie": f"csrftoken={csrf_cookie}"},
        )
        assert logged_in.status_code == 302, logged_in.text[:500]
        cookies = logged_in.headers.get_list("Set-Cookie")
        assert any(re.search(r"sessionid=[^;]+;.*\bSecure\b", cookie) for cookie in cookies), cookies


# --- operator endpoints -----------------------------------------------------------------------------


def test_metrics_do_not_exist_in_production_without_a_token(start_production):
    service = start_production(METRICS_TOKEN="")
    with service.client() as client:
        response = client.get("/metrics")
    assert response.status_code == 404
    assert "secureconnect_" not in response.text


def test_metrics_and_the_ready_report_need_the_operator_token_in_production(start_production):
    service = start_production()
    with service.client() as anonymous, service.client("not-the-token") as guessing:
        for client in (anonymous, guessing):
            assert client.get("/metrics").status_code == 401
            assert client.get("/health/ready").json() == {"status": "not_ready"}  # DB_STARTUP_MODE=off: starting
    with service.client(METRICS_TOKEN) as operator:
        assert "secureconnect_persistence_state" in operator.get("/metrics").text
        report = operator.get("/health/ready").json()
        assert report["status"] == "not_ready" and report["state"] == "starting" and "channel_layer" in report
