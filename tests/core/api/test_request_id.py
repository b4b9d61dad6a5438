"""X-Request-ID: taken from the client when sane, generated otherwise, echoed, and logged."""

import logging
import re

import pytest
from django.conf import settings as django_settings
from django.test import AsyncClient

from core.api.request_id import (
    RequestIdLogFilter,
    bind_request_id,
    clear_request_id,
    current_request_id,
    request_id_from_header,
)
from tests.support.api import post_json

pytestmark = [pytest.mark.urls("tests.core.api.urls"), pytest.mark.portable]


def test_a_sane_incoming_id_is_echoed_in_header_and_meta(client):
    response = post_json(client, "/v1/test/echo", {}, headers={"X-Request-ID": "mobile-7f3a.42_x"})
    assert response["X-Request-ID"] == "mobile-7f3a.42_x"
    assert response.json()["meta"]["request_id"] == "mobile-7f3a.42_x"


def test_without_an_incoming_id_one_is_generated(client):
    response = post_json(client, "/v1/test/echo", {})
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    assert response.json()["meta"]["request_id"] == response["X-Request-ID"]


def test_every_request_gets_its_own_generated_id(client):
    assert (
        post_json(client, "/v1/test/echo", {})["X-Request-ID"] != post_json(client, "/v1/test/echo", {})["X-Request-ID"]
    )


@pytest.mark.parametrize(
    "insane",
    ["x" * 129, "has space", "semi;colon", "back\\slash", "ünïcode", "<script>"],
)
def test_an_insane_incoming_id_is_replaced(client, insane):
    response = post_json(client, "/v1/test/echo", {}, headers={"X-Request-ID": insane})
    assert response["X-Request-ID"] != insane
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


@pytest.mark.asyncio
async def test_the_id_is_bound_and_echoed_under_asgi_as_well():
    response = await AsyncClient().post(
        "/v1/test/echo", {}, content_type="application/json", headers={"X-Request-ID": "asgi-1"}
    )
    assert response["X-Request-ID"] == "asgi-1"
    assert response.json()["meta"]["request_id"] == "asgi-1"
    assert response.json()["data"]["request_id"] == "asgi-1"


def test_an_id_of_128_characters_is_accepted():
    assert request_id_from_header("a" * 128) == "a" * 128


def test_error_responses_carry_the_id_too(client):
    response = client.get("/v1/no-such-thing", headers={"X-Request-ID": "trace-404"})
    assert response["X-Request-ID"] == "trace-404"
    assert response.json()["meta"]["request_id"] == "trace-404"


def test_a_413_carries_the_id(client):
    response = post_json(client, "/v1/test/echo", {"x": "y" * 70_000}, headers={"X-Request-ID": "big-body"})
    assert response.status_code == 413
    assert response.json()["meta"]["request_id"] == "big-body"


def test_the_id_is_current_while_the_view_runs(client):
    response = post_json(client, "/v1/test/echo", {}, headers={"X-Request-ID": "inside-view"})
    assert response.json()["data"]["request_id"] == "inside-view"


def test_the_id_is_cleared_after_the_request(client):
    post_json(client, "/v1/test/echo", {}, headers={"X-Request-ID": "gone-afterwards"})
    assert current_request_id() is None


def test_admin_pages_get_an_id_as_well(client):
    assert client.get("/admin/login/", headers={"X-Request-ID": "admin-1"})["X-Request-ID"] == "admin-1"


def test_log_records_carry_the_current_request_id():
    record = logging.LogRecord("calls", logging.INFO, __file__, 1, "hello", None, None)
    bind_request_id("log-me")
    try:
        RequestIdLogFilter().filter(record)
    finally:
        clear_request_id()
    assert record.request_id == "log-me"


def test_djangos_own_log_line_about_the_response_carries_the_id(client):
    records = []
    handler = logging.Handler()
    handler.addFilter(RequestIdLogFilter())
    handler.emit = records.append
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        client.get("/v1/no-such-thing", headers={"X-Request-ID": "logged-404"})
    finally:
        logger.removeHandler(handler)
    assert [record.request_id for record in records] == ["logged-404"]


def test_log_records_outside_a_request_show_a_dash():
    record = logging.LogRecord("calls", logging.INFO, __file__, 1, "hello", None, None)
    RequestIdLogFilter().filter(record)
    assert record.request_id == "-"


def test_the_log_format_prints_the_request_id():
    logging_config = django_settings.LOGGING
    assert "%(request_id)s" in logging_config["formatters"]["plain"]["format"]
    assert "request_id" in logging_config["handlers"]["console"]["filters"]
